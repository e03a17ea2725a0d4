"""The `aos` command's HTTP client for a running host: where it is, which key to send, errors as one line.

URL: `--url`, else `AOS_URL`, else http://127.0.0.1:7071. Key (sent as `x-functions-key`, never printed):
`--key`, else `AOS_KEY`, else `AOS_DEVHOST__FUNCTION_KEY` from the environment or from `local.settings.json`
in the current folder, else the key a local host generated and keeps in its data folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from services.cli.output import CliError

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:7071"
SETTINGS_FILE = "local.settings.json"
TIMEOUT = 60.0  # seconds; long enough for `audit verify` of a big chain


def settings_values(folder: Path | None = None) -> dict[str, str]:
    """`Values` of local.settings.json in `folder` (default: the current one), or {} when there is none."""
    from aos_core.errors import ConfigError
    from services.devhost.settings import read_values

    path = (folder or Path.cwd()) / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        return read_values(path)
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None


def resolve_key(key: str | None, kind: str = "function") -> str | None:
    """The key to send: the option (or AOS_KEY, which click reads into it), else the settings, else the key the
    local host generated; None when there is none (the host then answers 401). `kind`: function or master."""
    if key:
        return key
    setting = f"AOS_DEVHOST__{kind.upper()}_KEY"
    if os.environ.get(setting):
        return os.environ[setting]
    values = settings_values()
    if values.get(setting):
        return values[setting]
    from services.devhost.settings import stored_keys

    data_dir = Path(os.environ.get("AOS_DATA_DIR") or values.get("AOS_DATA_DIR") or ".aos")
    return stored_keys(data_dir).get(kind) or None


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def remote_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--url`, `--key` and `--json` to a command that talks to a host; it receives `api` and `as_json`."""

    @click.option("--json", "as_json", is_flag=True, help="print the host's JSON answer as is (for scripts)")
    @click.option("--key", envvar="AOS_KEY", default=None, show_envvar=True,
                  help="function key [default: AOS_DEVHOST__FUNCTION_KEY from the environment or "
                       "local.settings.json, else the key the local host generated]")
    @click.option("--url", envvar="AOS_URL", default=DEFAULT_URL, show_default=True, show_envvar=True,
                  callback=_check_url, help="base URL of the AOS host")
    @wraps(func)
    def command(url: str, key: str | None, as_json: bool, **kwargs: Any) -> Any:
        with Api(url, key) as api:
            return func(api=api, as_json=as_json, **kwargs)

    return command


def path(*parts: str) -> str:
    """A URL path with each part quoted, so ids cannot reach another route."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


class Api:
    """A synchronous client for one host; every failure becomes a CliError with the documented exit code.

    It connects, and looks for the key, on the first request, so a command that ends up not asking the
    host (`audit verify --local`, a usage error) does neither.
    """

    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url
        self._key_option = key
        self.has_key = False
        self._http: httpx.Client | None = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()

    def _client(self) -> httpx.Client:
        if self._http is None:
            import httpx

            key = resolve_key(self._key_option)
            self.has_key = key is not None
            headers = {"user-agent": "aos-cli"} | ({"x-functions-key": key} if key else {})
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)
        return self._http

    def master_key(self) -> str | None:
        """The key for the local host's own admin routes: `--key` if given, else the host's master key."""
        return resolve_key(self._key_option, "master")

    def request(self, method: str, route: str, *, params: dict[str, Any] | None = None, json: Any = None,
                allow: tuple[int, ...] = (), headers: dict[str, str] | None = None) -> httpx.Response:
        """Send one request; a status >= 400 not in `allow` is a CliError naming status, title and detail."""
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        http = self._client()
        try:
            response = http.request(method, route, params=query, json=json, headers=headers)
        except httpx.ConnectError:
            raise CliError(f"no AOS host at {self.url} (start one with aos serve)", 3) from None
        except httpx.TimeoutException:
            raise CliError(f"the host at {self.url} did not answer within {TIMEOUT:g} s", 3) from None
        except httpx.TransportError as exc:
            raise CliError(f"cannot talk to the host at {self.url}: {exc}", 3) from None
        if response.status_code >= 400 and response.status_code not in allow:
            raise CliError(self._problem(response), 1)
        return response

    def get(self, route: str, **params: Any) -> Any:
        return self.request("GET", route, params=params).json()

    def post(self, route: str, body: Any, *, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.request("POST", route, params=params, json=body, headers=headers).json()

    def delete(self, route: str) -> Any:
        return self.request("DELETE", route).json()

    def _problem(self, response: httpx.Response) -> str:
        """`<status> <title>: <detail>` from the RFC 9457 body (or what else the host sent)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("title"):
            detail = body.get("detail")
            errors = body.get("errors") or []
            if not detail and errors and isinstance(errors[0], dict):
                detail = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors[:3])
            text = f"{response.status_code} {body['title']}" + (f": {detail}" if detail else "")
        else:
            snippet = " ".join(response.text.split())[:200]
            text = f"{response.status_code} {response.reason_phrase}" + (f": {snippet}" if snippet else "")
        if response.status_code == 401 and not self.has_key:
            text += " (no key found: pass --key or set AOS_KEY)"
        return text


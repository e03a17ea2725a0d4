"""Host settings the way `func start` reads them: local.settings.json `Values` as environment, host.json options.

`Values` from `local.settings.json` (or, when it is missing, `local.settings.json.example`) are put in the
process environment before the app is imported, without overriding variables already set, so a test or a
shell can still override one setting. `%NAME%` in a binding is resolved against that environment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aos_core.errors import ConfigError
from services.private_files import write_private_file

_SETTING = re.compile(r"%([^%]+)%")
KEYS_FILE = "host_keys.json"


@dataclass
class HostSettings:
    """What the host itself needs; the app's own settings stay in the environment."""

    app_dir: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7071
    route_prefix: str = "api"
    max_delivery_count: int = 10
    lock_duration: float = 30.0
    max_concurrent_calls: int = 16
    thread_pool_size: int = 32
    entity_batch_size: int = 64
    task_hub: str = "aoshub"
    settings_file: Path | None = None
    function_key: str = ""
    master_key: str = ""
    system_key: str = ""  # the Durable extension's key (`durabletask_extension`); the master key when empty
    open_webhooks: bool = False  # local development only: the host's own webhooks and /admin need no key
    max_body_bytes: int = 100 * 1024 * 1024  # the Functions host's request size limit, enforced while reading
    max_message_bytes: int = 256 * 1024  # a topic message posted to /admin/servicebus (Service Bus standard)
    header_timeout: float = 10.0  # seconds for a request's headers to arrive (from connect or the last response)
    body_timeout: float = 60.0  # seconds for a request's whole body to arrive
    max_connections: int = 1000  # open connections; one more is answered 503
    instance_id: str = ""  # this instance's name among several over one data folder; "host-<pid>" when empty
    partitions: int = 4  # entity partitions leased among instances (durableTask.storageProvider.partitionCount)
    lease_ttl: float = 10.0  # seconds a partition or timer lease lasts unless renewed (renewed every third)
    entity_poll: float = 0.05  # seconds between looks at the shared entity queue for other instances' signals
    sources: list[str] = field(default_factory=list)

    @property
    def durable_key(self) -> str:
        """The key the Durable webhooks accept besides the master key, and the one the app's client sends."""
        return self.system_key or self.master_key

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def read_values(path: Path) -> dict[str, str]:
    """The `Values` object of a local.settings.json file, every value as text."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read it as JSON: {exc}") from None
    values = raw.get("Values", {}) if isinstance(raw, dict) else None
    if not isinstance(values, dict):
        raise ConfigError(f"{path.name}: 'Values' must be an object of setting names to values")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def apply_local_settings(app_dir: Path, settings_file: Path | None = None) -> list[str]:
    """Put the settings file's `Values` into os.environ (existing variables win); return the files read."""
    candidates = [settings_file] if settings_file else [app_dir / "local.settings.json",
                                                        app_dir / "local.settings.json.example"]
    for path in candidates:
        if path is not None and path.is_file():
            for name, value in read_values(path).items():
                os.environ.setdefault(name, value)
            return [str(path)]
    if settings_file:
        raise ConfigError(f"settings file {settings_file} does not exist")
    return []


def read_host_json(app_dir: Path) -> dict[str, Any]:
    path = app_dir / "host.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"host.json: not valid JSON: {exc}") from None
    return raw if isinstance(raw, dict) else {}


def resolve(value: Any, what: str) -> Any:
    """Replace `%NAME%` with the app setting NAME, as the Functions host does for binding properties."""
    if not isinstance(value, str):
        return value

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{what}: app setting {name!r} (from {value!r}) is not set; add it to "
                              "local.settings.json Values or the environment")
        return os.environ[name]

    return _SETTING.sub(setting, value)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None


def stored_keys(data_dir: Path) -> dict[str, str]:
    """The keys a host generated and kept in `data_dir` (`{"function": ..., "master": ...}`), else {}."""
    path = data_dir / KEYS_FILE
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _keys(data_dir: Path) -> dict[str, str]:
    """Function, master and system keys: from settings, else generated once and kept (0600) in the data folder."""
    stored = stored_keys(data_dir)
    keys = {name: os.environ.get(f"AOS_DEVHOST__{name.upper()}_KEY") or str(stored.get(name) or "")
            or secrets.token_urlsafe(24) for name in ("function", "master", "system")}
    if stored != keys and not os.environ.get("AOS_DEVHOST__FUNCTION_KEY"):
        write_private_file(data_dir / KEYS_FILE, json.dumps(keys))
    return keys


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}: {raw!r} is not true or false")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}: {raw!r} is not a positive number")
    return value


def load_host_settings(app_dir: Path, data_dir: Path | None = None, *, host: str = "127.0.0.1", port: int = 7071,
                       settings_file: Path | None = None, claim: Callable[[Path], object] | None = None
                       ) -> HostSettings:
    """Apply local settings to the environment and read host.json; call before importing the app.

    `data_dir` (from `--data`) wins over `AOS_DATA_DIR`, so the app's kernel and the host share one folder.
    `claim` is called with that folder before anything is written into it (the host takes ownership there).
    """
    sources = apply_local_settings(app_dir, settings_file)
    if data_dir is None:
        data_dir = Path(os.environ.get("AOS_DATA_DIR") or ".aos")
        if not data_dir.is_absolute():
            data_dir = app_dir / data_dir
    os.environ["AOS_DATA_DIR"] = str(data_dir)
    if claim is not None:
        claim(data_dir)
    host_json = read_host_json(app_dir)
    extensions = host_json.get("extensions", {}) if isinstance(host_json.get("extensions"), dict) else {}
    http = extensions.get("http", {}) or {}
    service_bus = extensions.get("serviceBus", {}) or {}
    durable = extensions.get("durableTask", {}) or {}
    handler = service_bus.get("messageHandlerOptions", {}) or {}
    provider = durable.get("storageProvider", {}) or {}
    route_prefix = str(http.get("routePrefix", "api")).strip("/")
    keys = _keys(data_dir)
    return HostSettings(
        app_dir=app_dir, data_dir=data_dir, host=host, port=port, route_prefix=route_prefix,
        max_delivery_count=_env_int("AOS_DEVHOST__MAX_DELIVERY_COUNT", 10),
        lock_duration=float(_env_int("AOS_DEVHOST__LOCK_DURATION", 30)),
        max_concurrent_calls=int(service_bus.get("maxConcurrentCalls", handler.get("maxConcurrentCalls", 16))),
        thread_pool_size=_env_int("AOS_DEVHOST__THREADS", 32),
        entity_batch_size=_env_int("AOS_DEVHOST__ENTITY_BATCH", 64),
        task_hub=resolve(str(durable.get("hubName", "aoshub")), "host.json durableTask.hubName"),
        settings_file=settings_file, function_key=keys["function"], master_key=keys["master"],
        system_key=keys["system"], open_webhooks=_env_flag("AOS_DEVHOST__OPEN_WEBHOOKS"),
        max_body_bytes=_env_int("AOS_DEVHOST__MAX_BODY_BYTES", 100 * 1024 * 1024),
        max_message_bytes=_env_int("AOS_DEVHOST__MAX_MESSAGE_BYTES", 256 * 1024),
        header_timeout=_env_number("AOS_DEVHOST__HEADER_TIMEOUT", 10.0),
        body_timeout=_env_number("AOS_DEVHOST__BODY_TIMEOUT", 60.0),
        max_connections=_env_int("AOS_DEVHOST__MAX_CONNECTIONS", 1000), sources=sources,
        instance_id=os.environ.get("AOS_DEVHOST__INSTANCE_ID", ""),
        partitions=max(1, int(provider.get("partitionCount", 4))),
        lease_ttl=_env_number("AOS_DEVHOST__LEASE_TTL", 10.0),
        entity_poll=_env_number("AOS_DEVHOST__ENTITY_POLL", 0.05))

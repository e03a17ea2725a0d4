"""KeyVaultSecretStore through the real SecretClient and azure-core pipeline, with a transport that answers like
Key Vault (challenge auth, 404 SecretNotFound, disabled secrets, 503). No vault can run here; Entra ID tokens come
from a stand-in credential, the one boundary mocked."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any
from urllib.parse import urlparse

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl_async import AsyncHttpResponseImpl
from azure.core.utils import CaseInsensitiveDict
from azure.keyvault.secrets.aio import SecretClient

from aos_core.errors import ConfigError
from aos_core.testing import ManualClock
from services.secrets import ChainedSecretStore, EnvironmentSecretStore, build_secret_store
from services.secrets.keyvault import KeyVaultSecretStore, SecretStoreError

VAULT = "https://aos-test.vault.azure.net"
_VAULTS = itertools.count(1)
TOKEN = "test-access-token"


class _Closable:
    async def close(self) -> None:
        pass


class FakeVault(AsyncHttpTransport):
    """Answers Key Vault's GET /secrets/{name} the way the service does, and records what it was asked."""

    def __init__(self, secrets: dict[str, str], disabled: frozenset[str] = frozenset()) -> None:
        self.secrets = secrets
        self.disabled = disabled
        self.requests: list[HttpRequest] = []
        self.down = False
        self.gate: asyncio.Event | None = None

    async def send(self, request: HttpRequest, **kwargs: Any) -> AsyncHttpResponseImpl:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        url = urlparse(request.url)
        if self.down:
            return self._respond(request, 503, {"error": {"code": "ServiceUnavailable", "message": "try later"}})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = ('Bearer authorization="https://login.microsoftonline.com/tenant-id", '
                         'resource="https://vault.azure.net"')
            return self._respond(request, 401, {"error": {"code": "Unauthorized"}}, {"WWW-Authenticate": challenge})
        assert request.method == "GET" and "api-version=" in url.query
        name = url.path.split("/")[2]
        if name not in self.secrets:
            return self._respond(request, 404, {"error": {"code": "SecretNotFound",
                                                          "message": f"A secret with (name/id) {name} was not found"}})
        body = {"value": self.secrets[name], "id": f"{VAULT}/secrets/{name}/0123456789abcdef",
                "attributes": {"enabled": name not in self.disabled, "created": 1700000000, "updated": 1700000000,
                               "recoveryLevel": "Recoverable+Purgeable"}}
        return self._respond(request, 200, body)

    @staticmethod
    def _respond(request: HttpRequest, status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
        response = AsyncHttpResponseImpl(
            request=request, internal_response=_Closable(), status_code=status, reason="",
            content_type="application/json; charset=utf-8",
            headers=CaseInsensitiveDict({"content-type": "application/json; charset=utf-8", **(headers or {})}),
            stream_download_generator=None,
        )
        response._content = json.dumps(body).encode()
        return response

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> FakeVault:
        return self

    async def __aexit__(self, *args: Any) -> None: ...


class StandInCredential:
    """Hands out a token for the scope the vault's challenge names (Entra ID cannot run here)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None: ...


def make_store(vault: FakeVault, clock: ManualClock, ttl: float = 60.0) -> tuple[KeyVaultSecretStore, Any]:
    credential = StandInCredential()
    # The SDK caches each vault's auth challenge for the life of the process: a vault of its own per store, so
    # what a test sees does not depend on which test talked to a vault before it.
    url = f"https://aos-test-{next(_VAULTS)}.vault.azure.net"
    client = SecretClient(url, credential, transport=vault, retry_total=0)  # type: ignore[arg-type]
    return KeyVaultSecretStore(client, ttl=ttl, clock=clock), credential


async def test_reads_through_challenge_auth_and_caches_for_the_ttl() -> None:
    vault, clock = FakeVault({"db-password": "s3cr3t"}), ManualClock()
    store, credential = make_store(vault, clock)
    assert await store.get_secret("db-password") == "s3cr3t"
    assert credential.scopes == [("https://vault.azure.net/.default",)]
    sent = len(vault.requests)
    assert sent == 2  # the unauthenticated probe answered 401 with the challenge, then the real read
    assert await store.get_secret("db-password") == "s3cr3t"
    assert len(vault.requests) == sent  # from the cache
    vault.secrets["db-password"] = "rotated"
    await clock.advance(59)
    assert await store.get_secret("db-password") == "s3cr3t"
    await clock.advance(2)
    assert await store.get_secret("db-password") == "rotated"  # the TTL passed: asked again
    await store.close()


async def test_missing_and_disabled_secrets_are_none_and_cached() -> None:
    vault = FakeVault({"off": "old"}, disabled=frozenset({"off"}))
    store, _ = make_store(vault, ManualClock())
    assert await store.get_secret("missing") is None
    assert await store.get_secret("off") is None
    sent = len(vault.requests)
    assert await store.get_secret("missing") is None
    assert len(vault.requests) == sent
    await store.close()


async def test_concurrent_reads_share_one_request() -> None:
    vault, clock = FakeVault({"api-key": "k"}), ManualClock()
    store, _ = make_store(vault, clock)
    await store.get_secret("api-key")  # authenticate once
    store.forget()
    before = len(vault.requests)
    vault.gate = asyncio.Event()
    readers = [asyncio.ensure_future(store.get_secret("api-key")) for _ in range(10)]
    await asyncio.sleep(0)
    vault.gate.set()
    assert await asyncio.gather(*readers) == ["k"] * 10
    assert len(vault.requests) == before + 1
    await store.close()


async def test_service_errors_are_typed_and_never_carry_the_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vault = FakeVault({"token": "value-that-must-not-leak"})
    store, _ = make_store(vault, ManualClock(), ttl=0)
    assert await store.get_secret("token") == "value-that-must-not-leak"
    vault.down = True
    with pytest.raises(SecretStoreError, match="503") as info:
        await store.get_secret("token")
    assert "value-that-must-not-leak" not in str(info.value)
    assert "value-that-must-not-leak" not in repr(store)
    assert "value-that-must-not-leak" not in caplog.text  # not in azure-core's HTTP logging either
    await store.close()


@pytest.mark.parametrize("name", ["", "has space", "under_score", "x" * 128, None])
async def test_bad_names_are_refused_before_any_request(name: Any) -> None:
    vault = FakeVault({})
    store, _ = make_store(vault, ManualClock())
    with pytest.raises(ValueError, match="secret name"):
        await store.get_secret(name)
    assert vault.requests == []
    await store.close()


async def test_environment_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = FakeVault({"openai-api-key": "from-vault", "only-in-vault": "v"})
    kv, _ = make_store(vault, ManualClock())
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    store = ChainedSecretStore([EnvironmentSecretStore(), kv])
    assert await store.get_secret("openai-api-key") == "from-env"
    assert await store.get_secret("only-in-vault") == "v"
    assert await store.get_secret("nowhere") is None
    assert "from-env" not in repr(store)
    await store.close()


async def test_build_secret_store_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_secret_store as build_from_config

    monkeypatch.setenv("local-only", "x")
    env_only = build_from_config(AOSConfig())
    assert [type(s).__name__ for s in env_only.stores] == ["EnvironmentSecretStore"]  # type: ignore[attr-defined]
    assert await env_only.get_secret("local-only") == "x"
    monkeypatch.setenv("AOS_KEYVAULT__URL", VAULT)
    with_vault = build_from_config(AOSConfig())
    assert [type(s).__name__ for s in with_vault.stores] == ["EnvironmentSecretStore", "KeyVaultSecretStore"]  # type: ignore[attr-defined]
    await with_vault.close()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"keyvault\.url"):
        build_secret_store("http://not-tls.example")

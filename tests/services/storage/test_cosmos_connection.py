"""The Cosmos DB connection is resolved by name at start, like the Functions Cosmos DB extension does it, and a
missing or bad setting stops the start naming the setting (never its value)."""

from __future__ import annotations

import asyncio

import pytest

from aos_core.errors import ConfigError
from services.storage.connections import resolve_cosmos_connection
from tests.cosmosdb import EMULATOR_KEY, CosmosServer

NAME = "CosmosDBConnection"
ENDPOINT = "https://aos-test.documents.azure.com:443/"
CLIENT_ID = "00000000-0000-4000-8000-000000000001"


def test_key_connection_string() -> None:
    connection = resolve_cosmos_connection(NAME, {NAME: f"AccountEndpoint={ENDPOINT};AccountKey={EMULATOR_KEY};"})
    assert (connection.endpoint, connection.key, connection.identity) == (ENDPOINT, EMULATOR_KEY, None)
    assert connection.credential() is None


@pytest.mark.parametrize(("value", "problem"), [
    (f"AccountEndpoint={ENDPOINT}", "needs AccountEndpoint and AccountKey"),
    (f"AccountKey={EMULATOR_KEY}", "needs AccountEndpoint and AccountKey"),
    (f"AccountEndpoint={ENDPOINT};AccountKey=not base64!", "AccountKey is not a base64 account key"),
    (f"AccountEndpoint=http://aos-test.documents.azure.com/;AccountKey={EMULATOR_KEY}", "https://"),
    (f"AccountEndpoint=aos-test.documents.azure.com;AccountKey={EMULATOR_KEY}", "https://"),
    ("just text", "not a connection string"),
])
def test_bad_connection_strings_name_the_setting_not_the_value(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        resolve_cosmos_connection(NAME, {NAME: value})
    assert str(info.value).startswith(f"{NAME}:")
    assert EMULATOR_KEY not in str(info.value)


def test_plain_http_only_on_loopback() -> None:
    for host in ("127.0.0.1:8081", "localhost:8081", "[::1]:8081"):
        value = f"AccountEndpoint=http://{host}/;AccountKey={EMULATOR_KEY}"
        assert resolve_cosmos_connection(NAME, {NAME: value}).endpoint == f"http://{host}/"


def test_identity_based_with_a_user_assigned_identity() -> None:
    env = {f"{NAME}__accountEndpoint": ENDPOINT.rstrip("/"), f"{NAME}__credential": "managedidentity",
           f"{NAME}__clientId": CLIENT_ID}
    connection = resolve_cosmos_connection(NAME, env)
    assert connection.endpoint == ENDPOINT and connection.key is None
    assert connection.identity is not None and connection.identity.managed
    assert connection.identity.client_id == CLIENT_ID
    credential = connection.credential()
    assert type(credential).__name__ == "ManagedIdentityCredential"
    asyncio.run(credential.close())


def test_identity_based_without_credential_uses_default_credential_and_colon_spelling() -> None:
    connection = resolve_cosmos_connection(NAME, {f"{NAME}:accountEndpoint": ENDPOINT})
    assert connection.identity is not None and not connection.identity.managed
    credential = connection.credential()
    assert type(credential).__name__ == "DefaultAzureCredential"
    asyncio.run(credential.close())


@pytest.mark.parametrize(("env", "setting"), [
    ({}, f"{NAME}: Cosmos DB connection not configured: set {NAME}__accountEndpoint"),
    ({f"{NAME}__accountEndpoint": "ftp://x"}, f"{NAME}__accountEndpoint: must be"),
    ({f"{NAME}__accountEndpoint": ENDPOINT, f"{NAME}__credential": "clientsecret"}, f"{NAME}__credential"),
    ({f"{NAME}__accountEndpoint": ENDPOINT, f"{NAME}__clientId": CLIENT_ID}, f"{NAME}__clientId"),
])
def test_missing_or_bad_identity_settings(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        resolve_cosmos_connection(NAME, env)


async def test_cosmos_backend_fails_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from aos_core import AgentOperatingSystem, AOSConfig

    monkeypatch.setenv("AOS_STORAGE__BACKEND", "cosmos")
    monkeypatch.setenv("AOS_STORAGE__COSMOS_CONNECTION", "AppCosmos")
    with pytest.raises(ConfigError, match="AppCosmos__accountEndpoint"):
        await AgentOperatingSystem(AOSConfig()).initialize()
    monkeypatch.setenv("AppCosmos__accountEndpoint", "http://cosmos.example.com/")
    with pytest.raises(ConfigError, match="AppCosmos__accountEndpoint: must be the account's https:// endpoint"):
        await AgentOperatingSystem(AOSConfig()).initialize()


async def test_cosmos_backend_is_selected_by_settings_alone(monkeypatch: pytest.MonkeyPatch,
                                                            cosmosdb: CosmosServer) -> None:
    from aos_core import AOSConfig
    from aos_core.runtime import build_state_store

    monkeypatch.setenv("AOS_STORAGE__BACKEND", "cosmos")
    monkeypatch.setenv("AOS_STORAGE__COSMOS_DATABASE", "selected-by-settings")
    monkeypatch.setenv(NAME, cosmosdb.connection_string)
    store = await build_state_store(AOSConfig())
    try:
        assert type(store).__name__ == "CosmosStateStore" and store.database == "selected-by-settings"
        etag = await store.put("k", {"n": 1})
        doc = await store.get("k")
        assert doc is not None and doc.value == {"n": 1} and doc.etag == etag
    finally:
        await store.close()

"""Functions-style connection resolution: connection strings, Azurite, identity-based settings, clear errors."""

from __future__ import annotations

import pytest

from aos_core.errors import ConfigError
from services.storage.connections import (
    DEV_ACCOUNT,
    resolve_servicebus_connection,
    resolve_storage_connection,
)

KEY = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="


def test_development_storage_means_azurite() -> None:
    conn = resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert conn.url("blob") == f"http://127.0.0.1:10000/{DEV_ACCOUNT}"
    assert conn.url("queue") == f"http://127.0.0.1:10001/{DEV_ACCOUNT}"
    assert conn.url("table") == f"http://127.0.0.1:10002/{DEV_ACCOUNT}"
    assert conn.identity is None and conn.credential() is None


def test_account_connection_string() -> None:
    value = f"DefaultEndpointsProtocol=https;AccountName=aosdata;AccountKey={KEY};EndpointSuffix=core.windows.net"
    conn = resolve_storage_connection("Storage", {"Storage": value})
    assert conn.url("blob") == "https://aosdata.blob.core.windows.net"
    assert conn.url("table") == "https://aosdata.table.core.windows.net"
    client = conn.blob_service_client()
    assert client.account_name == "aosdata"


@pytest.mark.parametrize("value, problem", [
    ("just-text", "not a connection string"),
    ("AccountName=aosdata", "AccountKey"),
    (f"AccountName=aosdata;AccountKey={KEY};BlobEndpoint=ftp://x", "https:// service URL"),
])
def test_bad_connection_strings_name_the_setting_not_the_value(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": value})
    assert str(info.value).startswith("AzureWebJobsStorage")
    assert KEY not in str(info.value)


def test_identity_based_with_a_user_assigned_identity() -> None:
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://aosdata.blob.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://aosdata.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
    }
    conn = resolve_storage_connection("AzureWebJobsStorage", env)
    assert conn.url("blob") == "https://aosdata.blob.core.windows.net"
    assert conn.identity is not None and conn.identity.managed
    assert conn.identity.client_id == "00000000-0000-0000-0000-000000000001"
    with pytest.raises(ConfigError, match="AzureWebJobsStorage__queueServiceUri"):
        conn.url("queue")
    credential = conn.credential()
    assert type(credential).__name__ == "ManagedIdentityCredential"


def test_account_name_gives_every_service_and_default_credential() -> None:
    conn = resolve_storage_connection("Data", {"Data__accountName": "aosdata"})
    assert [conn.url(s) for s in ("blob", "queue", "table")] == [
        "https://aosdata.blob.core.windows.net", "https://aosdata.queue.core.windows.net",
        "https://aosdata.table.core.windows.net"]
    assert conn.identity is not None and not conn.identity.managed
    assert type(conn.credential()).__name__ == "DefaultAzureCredential"


def test_colon_spelling_from_local_settings_is_accepted() -> None:
    conn = resolve_storage_connection("Data", {"Data:blobServiceUri": "https://aosdata.blob.core.windows.net"})
    assert conn.url("blob") == "https://aosdata.blob.core.windows.net"


@pytest.mark.parametrize("env, setting", [
    ({}, "AzureWebJobsStorage: storage connection not configured"),
    ({"AzureWebJobsStorage__accountName": "Bad_Name"}, "AzureWebJobsStorage__accountName"),
    ({"AzureWebJobsStorage__blobServiceUri": "not a url"}, "AzureWebJobsStorage__blobServiceUri"),
    ({"AzureWebJobsStorage__accountName": "aosdata", "AzureWebJobsStorage__credential": "password"},
     "AzureWebJobsStorage__credential"),
    ({"AzureWebJobsStorage__accountName": "aosdata", "AzureWebJobsStorage__clientId": "x"},
     "AzureWebJobsStorage__clientId"),
])
def test_missing_or_bad_identity_settings(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        resolve_storage_connection("AzureWebJobsStorage", env)


def test_service_bus_connections() -> None:
    conn = resolve_servicebus_connection("ServiceBusConnection", {
        "ServiceBusConnection": f"Endpoint=sb://aos.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"})
    assert conn.connection_string is not None
    conn = resolve_servicebus_connection("ServiceBusConnection", {
        "ServiceBusConnection__fullyQualifiedNamespace": "aos.servicebus.windows.net",
        "ServiceBusConnection__credential": "managedidentity", "ServiceBusConnection__clientId": "abc"})
    assert conn.namespace == "aos.servicebus.windows.net" and conn.identity is not None
    assert conn.identity.client_id == "abc"
    assert resolve_servicebus_connection("ServiceBusConnection", {  # a port, as an emulator or a proxy has
        "ServiceBusConnection__fullyQualifiedNamespace": "aos.servicebus.windows.net:5671"}).namespace.endswith(":5671")
    for env, setting in [
        ({}, "ServiceBusConnection: Service Bus connection not configured"),
        ({"ServiceBusConnection": "Endpoint=https://x;SharedAccessKeyName=a;SharedAccessKey=b"}, "Endpoint=sb://"),
        ({"ServiceBusConnection": "Endpoint=sb://aos.servicebus.windows.net/"}, "SharedAccessKeyName"),
        ({"ServiceBusConnection__fullyQualifiedNamespace": "not a host"}, "__fullyQualifiedNamespace"),
        ({"ServiceBusConnection__fullyQualifiedNamespace": "aos.servicebus.windows.net:\u0665\u0666\u0667\u0661"},
         "__fullyQualifiedNamespace"),  # Arabic-Indic digits are no port
    ]:
        with pytest.raises(ConfigError, match=setting) as info:
            resolve_servicebus_connection("ServiceBusConnection", env)
        assert KEY not in str(info.value)


async def test_azure_backend_fails_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from aos_core import AgentOperatingSystem, AOSConfig

    monkeypatch.setenv("AOS_STORAGE__BACKEND", "azure")
    monkeypatch.setenv("AOS_STORAGE__CONNECTION", "AppStorage")
    with pytest.raises(ConfigError, match="AppStorage"):
        await AgentOperatingSystem(AOSConfig()).initialize()

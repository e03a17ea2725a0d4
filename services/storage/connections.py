"""Resolve a Functions-style connection by name, the way the Functions host does, at start.

A connection named `AzureWebJobsStorage` is either
- a connection string in the app setting of that name (`UseDevelopmentStorage=true` means Azurite), or
- identity-based: `AzureWebJobsStorage__blobServiceUri` / `__queueServiceUri` / `__tableServiceUri` or
  `__accountName`, with `__credential=managedidentity` and optionally `__clientId` (a user-assigned
  identity); without `__credential`, `DefaultAzureCredential` (local `az login`, environment, managed identity).

Service Bus connections are the same with a connection string or `<name>__fullyQualifiedNamespace`, Cosmos DB
connections with `AccountEndpoint=...;AccountKey=...` or `<name>__accountEndpoint`.
A missing or malformed setting raises ConfigError naming the setting (never its value, which may hold a key).
The SDK clients are imported inside the methods that build them, so resolving a connection loads no Azure SDK.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from aos_core.errors import ConfigError

SERVICES = ("blob", "queue", "table")
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
_ENDPOINT_KEYS = {"blob": "BlobEndpoint", "queue": "QueueEndpoint", "table": "TableEndpoint"}
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9](:[0-9]+)?$")  # [0-9]: \d takes any script's digits


def development_connection_string(host: str = "127.0.0.1", ports: Mapping[str, int] | None = None) -> str:
    """The explicit connection string `UseDevelopmentStorage=true` stands for (Azurite on `host`)."""
    ports = {**DEV_PORTS, **(ports or {})}
    endpoints = ";".join(f"{_ENDPOINT_KEYS[s]}=http://{host}:{ports[s]}/{DEV_ACCOUNT}" for s in SERVICES)
    return f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};{endpoints};"


def parse_connection_string(value: str, setting: str) -> dict[str, str]:
    """`Key=Value;...` pairs by case-insensitive key; ConfigError naming `setting` if malformed."""
    pairs: dict[str, str] = {}
    for part in value.strip().strip(";").split(";"):
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{setting}: not a connection string (expected Key=Value pairs separated by ';')")
        pairs[key.strip().lower()] = val.strip()
    return pairs


def _setting(env: Mapping[str, str], name: str) -> str | None:
    # App settings are environment variables; Linux hosts use `__`, local.settings.json may use `:`.
    for candidate in (name, name.replace("__", ":")):
        value = env.get(candidate)
        if value is not None and value.strip():
            return value.strip()
    return None


def _check_url(url: str, setting: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ConfigError(f"{setting}: must be an absolute https:// service URL")
    return url.rstrip("/")


@dataclass(frozen=True)
class Identity:
    """How to get an Entra ID token: a managed identity (optionally user-assigned) or DefaultAzureCredential."""

    managed: bool = False
    client_id: str | None = None

    def credential(self) -> Any:
        """A new async azure-identity credential (the caller closes it)."""
        if self.managed:
            from azure.identity.aio import ManagedIdentityCredential

            kwargs = {"client_id": self.client_id} if self.client_id else {}
            return ManagedIdentityCredential(**kwargs)
        from azure.identity.aio import DefaultAzureCredential

        return DefaultAzureCredential()


def _identity(env: Mapping[str, str], name: str) -> Identity:
    kind = _setting(env, f"{name}__credential")
    client_id = _setting(env, f"{name}__clientId")
    if kind is not None and kind.lower() != "managedidentity":
        raise ConfigError(f"{name}__credential: must be 'managedidentity' (or unset for DefaultAzureCredential)")
    if client_id is not None and kind is None:
        raise ConfigError(f"{name}__clientId: needs {name}__credential=managedidentity")
    return Identity(managed=kind is not None, client_id=client_id)


@dataclass(frozen=True)
class StorageConnection:
    """A resolved Storage connection: a connection string, or service URLs plus an identity."""

    name: str
    connection_string: str | None = None
    urls: Mapping[str, str] | None = None  # service -> endpoint URL, identity-based only
    identity: Identity | None = None

    def url(self, service: str) -> str:
        """The endpoint of `service` (blob, queue or table); ConfigError if this connection has none."""
        if self.connection_string is not None:
            return _connection_string_url(parse_connection_string(self.connection_string, self.name), service,
                                          self.name)
        assert self.urls is not None
        if service not in self.urls:
            raise ConfigError(f"{self.name}__{service}ServiceUri: not set (nor {self.name}__accountName)")
        return self.urls[service]

    def credential(self) -> Any:
        """A new async token credential for an identity-based connection (the caller closes it), else None."""
        return None if self.identity is None else self.identity.credential()

    def _client(self, cls: Any, service: str, credential: Any, **kwargs: Any) -> Any:
        if self.connection_string is not None:
            return cls.from_connection_string(self.connection_string, **kwargs)
        return cls(self.url(service), credential=credential or self.credential(), **kwargs)

    def blob_service_client(self, credential: Any = None, **kwargs: Any) -> Any:
        """A new `azure.storage.blob.aio.BlobServiceClient`."""
        from azure.storage.blob.aio import BlobServiceClient

        return self._client(BlobServiceClient, "blob", credential, **kwargs)

    def table_service_client(self, credential: Any = None, **kwargs: Any) -> Any:
        """A new `azure.data.tables.aio.TableServiceClient`."""
        from azure.data.tables.aio import TableServiceClient

        return self._client(TableServiceClient, "table", credential, **kwargs)

    def queue_service_client(self, credential: Any = None, **kwargs: Any) -> Any:
        """A new `azure.storage.queue.aio.QueueServiceClient`."""
        from azure.storage.queue.aio import QueueServiceClient

        return self._client(QueueServiceClient, "queue", credential, **kwargs)


def _connection_string_url(pairs: Mapping[str, str], service: str, setting: str) -> str:
    explicit = pairs.get(_ENDPOINT_KEYS[service].lower())
    if explicit:
        return _check_url(explicit, setting)
    account = pairs.get("accountname")
    if not account:
        raise ConfigError(f"{setting}: has neither {_ENDPOINT_KEYS[service]} nor AccountName")
    protocol = pairs.get("defaultendpointsprotocol", "https")
    suffix = pairs.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.{service}.{suffix}"


def resolve_storage_connection(name: str, env: Mapping[str, str] | None = None) -> StorageConnection:
    """Resolve the Storage connection `name` from app settings; ConfigError naming the setting if it cannot be."""
    env = os.environ if env is None else env
    value = _setting(env, name)
    if value is not None:
        if value.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
            return StorageConnection(name, connection_string=development_connection_string())
        pairs = parse_connection_string(value, name)
        has_key = pairs.get("accountname") and pairs.get("accountkey")
        if not has_key and not pairs.get("sharedaccesssignature"):
            raise ConfigError(f"{name}: a connection string needs AccountName and AccountKey, or SharedAccessSignature")
        for service in SERVICES:
            if _ENDPOINT_KEYS[service].lower() in pairs or pairs.get("accountname"):
                _connection_string_url(pairs, service, name)  # validates the URL it names
        return StorageConnection(name, connection_string=value)
    urls: dict[str, str] = {}
    account = _setting(env, f"{name}__accountName")
    if account is not None:
        if not _ACCOUNT_NAME.match(account):
            raise ConfigError(f"{name}__accountName: must be 3-24 lowercase letters and digits")
        urls = {s: f"https://{account}.{s}.core.windows.net" for s in SERVICES}
    for service in SERVICES:
        setting = f"{name}__{service}ServiceUri"
        uri = _setting(env, setting)
        if uri is not None:
            urls[service] = _check_url(uri, setting)
    if not urls:
        raise ConfigError(
            f"{name}: storage connection not configured: set {name} to a connection string (or "
            f"UseDevelopmentStorage=true), or {name}__blobServiceUri / __queueServiceUri / __tableServiceUri "
            f"or {name}__accountName for an identity-based connection"
        )
    return StorageConnection(name, urls=urls, identity=_identity(env, name))


@dataclass(frozen=True)
class ServiceBusConnection:
    """A resolved Service Bus connection: a connection string, or a namespace plus an identity."""

    name: str
    connection_string: str | None = None
    namespace: str | None = None
    identity: Identity | None = None

    def client(self, **kwargs: Any) -> Any:
        """A new `azure.servicebus.aio.ServiceBusClient`."""
        from azure.servicebus.aio import ServiceBusClient

        if self.connection_string is not None:
            return ServiceBusClient.from_connection_string(self.connection_string, **kwargs)
        assert self.identity is not None and self.namespace is not None
        return ServiceBusClient(self.namespace, self.identity.credential(), **kwargs)


def resolve_servicebus_connection(name: str, env: Mapping[str, str] | None = None) -> ServiceBusConnection:
    """Resolve the Service Bus connection `name`; ConfigError naming the setting if it cannot be."""
    env = os.environ if env is None else env
    value = _setting(env, name)
    if value is not None:
        pairs = parse_connection_string(value, name)
        endpoint = pairs.get("endpoint", "")
        if not endpoint.startswith("sb://") or not urlparse(endpoint).netloc:
            raise ConfigError(f"{name}: a Service Bus connection string needs Endpoint=sb://<namespace>/")
        if not (pairs.get("sharedaccesskeyname") and pairs.get("sharedaccesskey")) and not pairs.get(
            "sharedaccesssignature"
        ) and pairs.get("usedevelopmentemulator", "").lower() != "true":
            raise ConfigError(f"{name}: needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature")
        return ServiceBusConnection(name, connection_string=value)
    setting = f"{name}__fullyQualifiedNamespace"
    namespace = _setting(env, setting)
    if namespace is None:
        raise ConfigError(
            f"{name}: Service Bus connection not configured: set {name} to a connection string or "
            f"{setting} (e.g. mybus.servicebus.windows.net) for an identity-based connection"
        )
    namespace = namespace.removeprefix("sb://").rstrip("/")
    if not _NAMESPACE.match(namespace) or "." not in namespace:
        raise ConfigError(f"{setting}: must be a host name such as mybus.servicebus.windows.net")
    return ServiceBusConnection(name, namespace=namespace, identity=_identity(env, name))


# --- Cosmos DB -----------------------------------------------------------------------------------------

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _check_cosmos_endpoint(url: str, setting: str) -> str:
    # Keys and tokens travel in request headers, so plain http is accepted only on this machine (a local server).
    parsed = urlparse(url)
    local = parsed.scheme == "http" and parsed.hostname in _LOOPBACK
    if not (parsed.scheme == "https" or local) or not parsed.netloc:
        raise ConfigError(f"{setting}: must be the account's https:// endpoint (e.g. https://myaccount.documents."
                          "azure.com:443/); http:// only on a loopback address")
    return url.rstrip("/") + "/"


@dataclass(frozen=True)
class CosmosConnection:
    """A resolved Cosmos DB connection: an endpoint plus an account key (connection string) or an identity."""

    name: str
    endpoint: str
    key: str | None = None  # from `AccountKey=` of a connection string; None: Entra ID through `identity`
    identity: Identity | None = None

    def client(self, credential: Any = None, **kwargs: Any) -> Any:
        """A new `azure.cosmos.aio.CosmosClient` (with a key, or `credential` / this identity's credential)."""
        from azure.cosmos.aio import CosmosClient

        if self.key is not None:
            return CosmosClient(self.endpoint, credential=self.key, **kwargs)
        assert self.identity is not None
        return CosmosClient(self.endpoint, credential=credential or self.identity.credential(), **kwargs)

    def credential(self) -> Any:
        """A new async token credential for an identity-based connection (the caller closes it), else None."""
        return None if self.identity is None else self.identity.credential()


def resolve_cosmos_connection(name: str, env: Mapping[str, str] | None = None) -> CosmosConnection:
    """Resolve the Cosmos DB connection `name` the way the Functions Cosmos DB extension names it.

    `<name>` = `AccountEndpoint=https://...;AccountKey=...;` (a key), or `<name>__accountEndpoint` with
    `__credential=managedidentity` and optionally `__clientId` (or no `__credential`: DefaultAzureCredential).
    ConfigError naming the setting if it cannot be.
    """
    env = os.environ if env is None else env
    value = _setting(env, name)
    if value is not None:
        pairs = parse_connection_string(value, name)
        if not pairs.get("accountendpoint") or not pairs.get("accountkey"):
            raise ConfigError(f"{name}: a Cosmos DB connection string needs AccountEndpoint and AccountKey")
        try:
            base64.b64decode(pairs["accountkey"], validate=True)
        except binascii.Error:
            raise ConfigError(f"{name}: AccountKey is not a base64 account key") from None
        return CosmosConnection(name, _check_cosmos_endpoint(pairs["accountendpoint"], name), key=pairs["accountkey"])
    setting = f"{name}__accountEndpoint"
    endpoint = _setting(env, setting)
    if endpoint is None:
        raise ConfigError(
            f"{name}: Cosmos DB connection not configured: set {setting} (https://<account>.documents.azure.com:443/)"
            f" for an identity-based connection, or {name} to a connection string with AccountEndpoint and AccountKey"
        )
    return CosmosConnection(name, _check_cosmos_endpoint(endpoint, setting), identity=_identity(env, name))

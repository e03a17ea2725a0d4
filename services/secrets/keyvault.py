"""SecretStore on Azure Key Vault (azure-keyvault-secrets async SecretClient) with a short TTL cache.

Values live only in the cache and in what `get_secret` returns: they are never logged, never in a repr or an
error message. Concurrent reads of one name share one request. Only imported when a vault URL is configured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, ResourceNotFoundError

from aos_core.clock import SystemClock
from aos_core.errors import AOSError, ConfigError
from aos_core.ports import Clock
from aos_core.single_flight import SingleFlight
from services.secrets.environment import check_secret_name


class SecretStoreError(AOSError):
    """Key Vault could not answer (unreachable, forbidden, throttled); the message names vault and secret only."""


class KeyVaultSecretStore:
    """Secrets from one vault; a found or missing secret is remembered for `ttl` seconds (rotations show up then)."""

    def __init__(self, client: Any, *, ttl: float = 300.0, clock: Clock | None = None, credential: Any = None) -> None:
        self._client = client
        self._credential = credential  # closed with the store when this store made it
        self._ttl = ttl
        self._clock = clock or SystemClock()
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._fetching: SingleFlight[str, str | None] = SingleFlight()  # one fetch per name at a time

    @classmethod
    def from_url(cls, vault_url: str, *, client_id: str | None = None, ttl: float = 300.0,
                 clock: Clock | None = None, **client_kwargs: Any) -> KeyVaultSecretStore:
        """A store on `vault_url` authenticated by DefaultAzureCredential (or the managed identity `client_id`)."""
        parsed = urlparse(vault_url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ConfigError("keyvault.url: must be https://<vault-name>.vault.azure.net")
        from azure.identity.aio import DefaultAzureCredential
        from azure.keyvault.secrets.aio import SecretClient

        kwargs = {"managed_identity_client_id": client_id} if client_id else {}
        credential = DefaultAzureCredential(**kwargs)
        return cls(SecretClient(vault_url, credential, **client_kwargs), ttl=ttl, clock=clock, credential=credential)

    @property
    def vault_url(self) -> str:
        return str(self._client.vault_url)

    async def get_secret(self, name: str) -> str | None:
        """The current value of secret `name`, or None if the vault has no such (enabled) secret."""
        check_secret_name(name)
        now = self._clock.monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[1] > now:
            return cached[0]
        return await self._fetching.run(name, lambda: self._fetch_and_cache(name))

    async def _fetch_and_cache(self, name: str) -> str | None:
        value = await self._fetch(name)
        self._cache[name] = (value, self._clock.monotonic() + self._ttl)
        return value

    async def _fetch(self, name: str) -> str | None:
        try:
            secret = await self._client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            status = getattr(exc, "status_code", None)
            detail = f"HTTP {status}" if status else type(exc).__name__
            raise SecretStoreError(f"Key Vault {self.vault_url}: cannot read secret {name!r} ({detail})") from None
        if secret.properties.enabled is False:
            return None
        return secret.value

    def forget(self, name: str | None = None) -> None:
        """Drop one cached secret (or all), so the next read asks the vault."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    async def close(self) -> None:
        self._cache.clear()
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self.vault_url!r}, cached={len(self._cache)})"

"""SecretStore adapters: the environment (local development) first, then Key Vault on Azure.

`keyvault` (and with it azure-keyvault-secrets and azure-identity) is imported only when a vault URL is set.
"""

from __future__ import annotations

from aos_core.ports import SecretStore
from services.secrets.environment import ChainedSecretStore, EnvironmentSecretStore, check_secret_name

__all__ = ["ChainedSecretStore", "EnvironmentSecretStore", "build_secret_store", "check_secret_name"]


def build_secret_store(
    vault_url: str | None, *, client_id: str | None = None, ttl: float = 300.0
) -> ChainedSecretStore:
    """The environment, then (when `vault_url` is set) Key Vault through DefaultAzureCredential or the identity
    `client_id`. The vault client is built here, so a bad URL fails at start, but nothing is fetched yet."""
    stores: list[SecretStore] = [EnvironmentSecretStore()]
    if vault_url:
        from services.secrets.keyvault import KeyVaultSecretStore

        stores.append(KeyVaultSecretStore.from_url(vault_url, client_id=client_id, ttl=ttl))
    return ChainedSecretStore(stores)

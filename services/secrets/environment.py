"""Secrets from environment variables (local development, Functions app settings) and a chain of stores."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from aos_core.ports import SecretStore

# Key Vault secret names: 1-127 letters, digits and dashes. The same rule everywhere, so a name that works
# locally works on Azure.
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


def check_secret_name(name: object) -> str:
    """Return `name` if it is a valid Key Vault secret name; ValueError otherwise (the name is not secret)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid secret name {name!r}: use 1-127 letters, digits and dashes")
    return name


class EnvironmentSecretStore:
    """`get_secret("openai-api-key")` reads `openai-api-key` or, as shells allow, `OPENAI_API_KEY`."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def get_secret(self, name: str) -> str | None:
        """The variable's value, or None when neither spelling is set."""
        check_secret_name(name)
        for candidate in (name, name.replace("-", "_").upper()):
            value = self._environ.get(candidate)
            if value is not None:
                return value
        return None

    def __repr__(self) -> str:
        return "EnvironmentSecretStore()"  # never the values


class ChainedSecretStore:
    """The first store that has the secret wins (environment before Key Vault)."""

    def __init__(self, stores: Sequence[SecretStore]) -> None:
        self.stores = list(stores)

    async def get_secret(self, name: str) -> str | None:
        """The secret from the first store that has it, or None."""
        check_secret_name(name)
        for store in self.stores:
            value = await store.get_secret(name)
            if value is not None:
                return value
        return None

    async def close(self) -> None:
        for store in self.stores:
            close = getattr(store, "close", None)
            if close is not None:
                await close()

    def __repr__(self) -> str:
        return f"ChainedSecretStore({', '.join(type(s).__name__ for s in self.stores)})"

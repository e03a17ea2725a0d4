"""Build the Reasoner that `ml` config asks for, with its cache: the one place that picks the backend."""

from __future__ import annotations

import threading
from typing import Any

from aos_core.config import AOSConfig, MLSettings
from aos_core.errors import ConfigError
from aos_core.ports import Clock, SecretStore
from services.ml.cache import CachedReasoner, ResponseCache
from services.ml.chat import parse_tool_rules
from services.ml.reasoner import InvalidRequestError, Reasoner, RuleBasedReasoner

_default: CachedReasoner | None = None
_lock = threading.Lock()  # the build is synchronous: no await while holding it


def build_reasoner(settings: MLSettings, *, secrets: SecretStore | None = None,
                   clock: Clock | None = None) -> CachedReasoner:
    """`local` (rule-based), `azureml` or `openai` per `ml.reasoner`, behind a ResponseCache sized by config."""
    inner: Reasoner
    if settings.reasoner == "local":
        try:
            inner = RuleBasedReasoner(tool_rules=parse_tool_rules(settings.tool_rules))
        except InvalidRequestError as exc:
            raise ConfigError(str(exc)) from None
    else:
        if not settings.endpoint_url:
            raise ConfigError(f"ml.endpoint_url: required when ml.reasoner is {settings.reasoner!r}")
        from services.ml.endpoints import AzureMLEndpointReasoner, AzureOpenAIChatReasoner, OpenAIChatReasoner
        from services.reliability import get_breaker

        name = f"ml:{settings.endpoint_url.split('?', 1)[0]}"
        breaker = get_breaker(name, failure_threshold=settings.breaker_failures, timeout=settings.breaker_timeout,
                              clock=clock)
        common: dict[str, Any] = {"secrets": secrets, "key_secret": settings.api_key_secret,
                                  "deployment": settings.deployment, "timeout": settings.timeout,
                                  "attempts": settings.attempts, "breaker": breaker, "clock": clock}
        if settings.reasoner == "azure_openai":
            inner = AzureOpenAIChatReasoner(settings.endpoint_url, api_version=settings.api_version, **common)
        else:
            cls = AzureMLEndpointReasoner if settings.reasoner == "azureml" else OpenAIChatReasoner
            inner = cls(settings.endpoint_url, **common)
    cache = ResponseCache(max_entries=settings.cache_max_entries, ttl=settings.cache_ttl, clock=clock)
    return CachedReasoner(inner, cache, clock=clock)


async def default_reasoner() -> CachedReasoner:
    """The process-wide reasoner built from `AOSConfig().ml` on first use (agents call this)."""
    global _default
    with _lock:
        if _default is None:
            config = AOSConfig()
            secrets = None
            if config.ml.api_key_secret:
                from aos_core.runtime import build_secret_store

                secrets = build_secret_store(config)
            _default = build_reasoner(config.ml, secrets=secrets)
        return _default


def set_default_reasoner(reasoner: CachedReasoner | None) -> None:
    """Replace the process-wide reasoner (tests; a host that builds its own)."""
    global _default
    _default = reasoner

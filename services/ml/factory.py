"""Build the Reasoner that `ml` config asks for, with its cache: the one place that picks the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aos_core.config import MLSettings
from aos_core.errors import ConfigError
from aos_core.ports import Clock, SecretStore
from services.ml.cache import CachedReasoner, ResponseCache
from services.ml.chat import parse_tool_rules
from services.ml.reasoner import InvalidRequestError, Reasoner, RuleBasedReasoner

if TYPE_CHECKING:
    from services.reliability import BreakerRegistry


def build_reasoner(settings: MLSettings, *, secrets: SecretStore | None = None, clock: Clock | None = None,
                   breakers: BreakerRegistry | None = None) -> CachedReasoner:
    """`local` (rule-based), `azureml` or `openai` per `ml.reasoner`, behind a ResponseCache sized by config;
    the endpoint's breaker is the one `breakers` (the kernel's) keeps for it, else a breaker of its own."""
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
        from services.reliability import BreakerRegistry

        name = f"ml:{settings.endpoint_url.split('?', 1)[0]}"
        breaker = (breakers or BreakerRegistry()).get(name, failure_threshold=settings.breaker_failures,
                                                      timeout=settings.breaker_timeout, clock=clock)
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

"""ML services: the LoRA adapter registry, reasoners (local rule-based, Azure ML, OpenAI-compatible), the
response cache, and the Azure ML job and endpoint builders (`services.ml.azureml`, which imports azure-ai-ml
only when called).
"""

from __future__ import annotations

from services.ml.cache import CachedReasoner, ResponseCache, cache_key
from services.ml.reasoner import (
    InvalidRequestError,
    Reasoner,
    ReasoningRequest,
    ReasoningResult,
    Rule,
    RuleBasedReasoner,
)
from services.ml.registry import AdapterRegistry, AdapterVersion, InvalidAdapterError, Stage

__all__ = [
    "AdapterRegistry",
    "AdapterVersion",
    "CachedReasoner",
    "InvalidAdapterError",
    "InvalidRequestError",
    "Reasoner",
    "ReasoningRequest",
    "ReasoningResult",
    "ResponseCache",
    "Rule",
    "RuleBasedReasoner",
    "Stage",
    "cache_key",
]

"""PurposeDrivenAgent(adapter_name=...) reasons with the version in production at call time."""

from __future__ import annotations

import pytest

from agents import PurposeDrivenAgent
from aos_core.config import MLSettings
from aos_core.errors import ConfigError
from services.ml import AdapterRegistry, CachedReasoner, RuleBasedReasoner
from services.ml.factory import build_reasoner, default_reasoner, set_default_reasoner
from services.storage import InMemoryStateStore


class CEOAgent(PurposeDrivenAgent):
    def __init__(self) -> None:
        super().__init__(agent_id="ceo", purpose="Strategic oversight", adapter_name="ceo")


async def test_promotion_and_rollback_take_effect_on_the_next_call() -> None:
    store = InMemoryStateStore()
    registry = AdapterRegistry(store)
    agent = CEOAgent()
    agent.bind(store)
    await agent.initialize()
    agent.reasoner = CachedReasoner(RuleBasedReasoner())

    assert await agent.resolve_adapter() is None
    first = await agent.reason("Should we expand? growth is strong")
    assert first.adapter is None and first.text.startswith("[base]")

    for version in ("1.0.0", "1.1.0"):
        await registry.register("ceo", version, base_model="base")
    await registry.promote("ceo", "1.0.0")
    assert (await agent.reason("Should we expand? growth is strong")).adapter == "ceo@1.0.0"
    await registry.promote("ceo", "1.1.0")
    newer = await agent.reason("Should we expand? growth is strong")
    assert newer.adapter == "ceo@1.1.0" and newer.cached is False  # a new version never reuses old answers
    await registry.rollback("ceo")
    back = await agent.reason("Should we expand? growth is strong")
    assert back.adapter == "ceo@1.0.0" and back.cached is True
    assert agent.describe()["adapter_name"] == "ceo"


async def test_default_reasoner_comes_from_config() -> None:
    set_default_reasoner(None)
    try:
        reasoner = await default_reasoner()
        assert isinstance(reasoner.inner, RuleBasedReasoner)
        assert reasoner is await default_reasoner()
    finally:
        set_default_reasoner(None)


def test_remote_reasoner_needs_an_endpoint_url() -> None:
    with pytest.raises(ConfigError, match=r"ml\.endpoint_url"):
        build_reasoner(MLSettings(reasoner="azureml"))
    reasoner = build_reasoner(MLSettings(reasoner="openai", endpoint_url="http://127.0.0.1:1/v1/chat/completions",
                                         cache_ttl=10, cache_max_entries=5))
    assert type(reasoner.inner).__name__ == "OpenAIChatReasoner"
    assert (reasoner.cache.ttl, reasoner.cache.max_entries) == (10, 5)

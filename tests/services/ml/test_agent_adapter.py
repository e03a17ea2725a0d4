"""PurposeDrivenAgent(adapter_name=...) reasons with the version in production at call time."""

from __future__ import annotations

import pytest

from agents import PurposeDrivenAgent
from aos_core.config import AOSConfig, MLSettings
from aos_core.errors import ConfigError
from aos_core.kernel import AgentOperatingSystem
from services.ml import AdapterRegistry, CachedReasoner, RuleBasedReasoner
from services.ml.factory import build_reasoner
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


async def test_agents_reason_with_their_kernels_reasoner_built_from_the_kernels_config() -> None:
    aos = AgentOperatingSystem(AOSConfig(storage={"backend": "memory"}, messaging={"backend": "sqlite"},
                                         ml={"cache_max_entries": 7}))
    assert isinstance(aos.reasoner.inner, RuleBasedReasoner) and aos.reasoner is aos.reasoner
    assert aos.reasoner.cache.max_entries == 7  # the kernel's settings, not a fresh AOSConfig() from the environment
    store = InMemoryStateStore()
    bound, alone = CEOAgent(), CEOAgent()
    bound.bind(store, host=aos)
    assert bound.own_reasoner() is aos.reasoner
    alone.bind(store)
    assert alone.own_reasoner() is not aos.reasoner and alone.own_reasoner() is alone.own_reasoner()


def test_remote_reasoner_needs_an_endpoint_url() -> None:
    with pytest.raises(ConfigError, match=r"ml\.endpoint_url"):
        build_reasoner(MLSettings(reasoner="azureml"))
    reasoner = build_reasoner(MLSettings(reasoner="openai", endpoint_url="http://127.0.0.1:1/v1/chat/completions",
                                         cache_ttl=10, cache_max_entries=5))
    assert type(reasoner.inner).__name__ == "OpenAIChatReasoner"
    assert (reasoner.cache.ttl, reasoner.cache.max_entries) == (10, 5)

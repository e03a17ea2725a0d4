"""The response cache and CachedReasoner: keys, TTL, size bound, coalescing, errors never cached."""

from __future__ import annotations

import asyncio

import pytest

from aos_core.testing import ManualClock
from services.ml.cache import CachedReasoner, ResponseCache, cache_key
from services.ml.reasoner import InvalidRequestError, ReasoningRequest, ReasoningResult, Rule, RuleBasedReasoner


class CountingReasoner:
    """Counts calls to the real rule-based reasoner; `gate` holds answers back until the test releases them."""

    def __init__(self) -> None:
        self.inner = RuleBasedReasoner()
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def reason(self, request: ReasoningRequest) -> ReasoningResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("endpoint down")
        return await self.inner.reason(request)

    async def close(self) -> None:
        return None


def test_rule_based_reasoner_is_deterministic_and_says_what_it_is() -> None:
    reasoner = RuleBasedReasoner()
    request = ReasoningRequest("Expand to Europe: strong growth, some risk of delay", adapter="ceo@1.0.0")
    first, second = reasoner.answer(request), reasoner.answer(request)
    assert first == second
    assert first.model == "rule-based"
    assert first.text.startswith("[ceo@1.0.0] recommendation: review")  # growth + strong vs risk + delay
    assert "proceed" in reasoner.answer(ReasoningRequest("growth and profit")).text
    assert "hold" in reasoner.answer(ReasoningRequest("fraud risk")).text


def test_rules_answer_first() -> None:
    reasoner = RuleBasedReasoner([Rule(r"budget for (?P<team>\w+)", "{adapter}: approve budget for {team}")])
    assert reasoner.answer(ReasoningRequest("budget for sales?", adapter="cfo@2.0.0")).text == \
        "cfo@2.0.0: approve budget for sales"


@pytest.mark.parametrize("kwargs", [{"prompt": ""}, {"prompt": "   "}, {"prompt": "x", "parameters": {"temp": 1}},
                                    {"prompt": "x", "parameters": {"temperature": float("nan")}}])
def test_bad_requests_are_rejected(kwargs: dict) -> None:
    with pytest.raises(InvalidRequestError):
        ReasoningRequest(**kwargs)


def test_key_covers_adapter_version_prompt_and_parameters() -> None:
    base = ReasoningRequest("p", adapter="ceo@1.0.0", parameters={"temperature": 0.0, "max_tokens": 10})
    same = ReasoningRequest("p", adapter="ceo@1.0.0", parameters={"max_tokens": 10, "temperature": 0.0})
    assert cache_key(base) == cache_key(same)
    for other in (ReasoningRequest("p", adapter="ceo@1.0.1", parameters=base.parameters),
                  ReasoningRequest("q", adapter="ceo@1.0.0", parameters=base.parameters),
                  ReasoningRequest("p", adapter="ceo@1.0.0", parameters={"temperature": 0.5, "max_tokens": 10}),
                  ReasoningRequest("p", adapter="ceo@1.0.0", system="be brief", parameters=base.parameters)):
        assert cache_key(other) != cache_key(base)
    assert "p" not in cache_key(base)  # a hash, never the prompt


async def test_hits_misses_and_ttl() -> None:
    clock = ManualClock()
    inner = CountingReasoner()
    reasoner = CachedReasoner(inner, ResponseCache(ttl=60, clock=clock), clock=clock)
    request = ReasoningRequest("growth plan", adapter="ceo@1.0.0")
    first = await reasoner.reason(request)
    second = await reasoner.reason(request)
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text and inner.calls == 1
    await clock.advance(61)
    assert (await reasoner.reason(request)).cached is False
    assert inner.calls == 2
    stats = reasoner.cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["expirations"] == 1
    assert reasoner.cache.hit_rate == pytest.approx(1 / 3)


async def test_new_adapter_version_is_a_miss() -> None:
    inner = CountingReasoner()
    reasoner = CachedReasoner(inner)
    await reasoner.reason(ReasoningRequest("plan", adapter="ceo@1.0.0"))
    result = await reasoner.reason(ReasoningRequest("plan", adapter="ceo@1.1.0"))
    assert result.cached is False and result.adapter == "ceo@1.1.0" and inner.calls == 2


async def test_size_bound_evicts_least_recently_used() -> None:
    inner = CountingReasoner()
    reasoner = CachedReasoner(inner, ResponseCache(max_entries=2))
    a, b, c = (ReasoningRequest(p) for p in ("a plan", "b plan", "c plan"))
    await reasoner.reason(a)
    await reasoner.reason(b)
    await reasoner.reason(a)  # a is now the most recently used
    await reasoner.reason(c)  # evicts b
    assert len(reasoner.cache) == 2 and reasoner.cache.evictions == 1
    assert (await reasoner.reason(a)).cached is True
    assert (await reasoner.reason(b)).cached is False


async def test_disabled_cache_always_asks() -> None:
    inner = CountingReasoner()
    reasoner = CachedReasoner(inner, ResponseCache(ttl=0))
    for _ in range(3):
        await reasoner.reason(ReasoningRequest("same"))
    assert inner.calls == 3


async def test_identical_concurrent_requests_call_the_endpoint_once() -> None:
    inner = CountingReasoner()
    inner.gate = asyncio.Event()
    reasoner = CachedReasoner(inner)
    tasks = [asyncio.ensure_future(reasoner.reason(ReasoningRequest("same question"))) for _ in range(5)]
    await asyncio.sleep(0)
    inner.gate.set()
    results = await asyncio.gather(*tasks)
    assert inner.calls == 1
    assert len({r.text for r in results}) == 1
    assert sorted(r.cached for r in results) == [False, True, True, True, True]


async def test_failures_are_not_cached_and_reach_every_waiter() -> None:
    inner = CountingReasoner()
    inner.gate, inner.fail_next = asyncio.Event(), True
    reasoner = CachedReasoner(inner)
    tasks = [asyncio.ensure_future(reasoner.reason(ReasoningRequest("q"))) for _ in range(3)]
    await asyncio.sleep(0)
    inner.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert len(reasoner.cache) == 0
    assert (await reasoner.reason(ReasoningRequest("q"))).cached is False


async def test_hit_rate_and_latency_are_exported_as_metrics() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from services.observability import metrics

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use_meter_provider(provider)
    try:
        reasoner = CachedReasoner(RuleBasedReasoner(), ResponseCache(name="metrics-test"))
        for _ in range(4):
            await reasoner.reason(ReasoningRequest("growth", adapter="ceo@1.0.0"))
        found: dict[str, list] = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [(dict(p.attributes), p) for p in metric.data.data_points]
    finally:
        metrics.use_meter_provider(None)
        provider.shutdown()
    requests = {a["cache"]: p.value for a, p in found["ml.inference.requests"]}
    assert requests == {"miss": 1, "hit": 3}
    assert sum(p.count for _, p in found["ml.inference.duration"]) == 4
    rates = {a["cache"]: p.value for a, p in found["ml.inference.cache_hit_rate"]}
    assert rates["metrics-test"] == pytest.approx(0.75)

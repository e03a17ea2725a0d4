"""The inference response cache and the Reasoner wrapper that uses it.

Keyed by (adapter version, prompt hash, parameters): a new adapter version never serves an answer cached for
the old one, and the prompt is kept only as a SHA-256, so the cache holds no prompt text. Entries expire
after `ttl` seconds on the Clock and the least recently used go first past `max_entries`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aos_core.clock import SystemClock
from aos_core.ports import Clock
from aos_core.single_flight import SingleFlight
from services.ml import telemetry
from services.ml.reasoner import Reasoner, ReasoningRequest, ReasoningResult

if TYPE_CHECKING:
    from services.ml.chat import ChatRequest, ChatResult


def cache_key(request: ReasoningRequest) -> str:
    """SHA-256 of (adapter version, prompt hash, system hash, parameters in canonical JSON)."""
    prompt = hashlib.sha256(request.prompt.encode("utf-8")).hexdigest()
    system = hashlib.sha256(request.system.encode("utf-8")).hexdigest()
    canonical = json.dumps([request.adapter, prompt, system, request.parameters], sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A bounded LRU of results with a time to live. `ttl=0` or `max_entries=0` caches nothing."""

    def __init__(self, *, max_entries: int = 10_000, ttl: float = 3600.0, clock: Clock | None = None,
                 name: str = "inference") -> None:
        if max_entries < 0 or ttl < 0:
            raise ValueError("max_entries and ttl must be >= 0")
        self.name = name
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self._entries: OrderedDict[str, tuple[float, ReasoningResult]] = OrderedDict()
        self.hits = self.misses = self.evictions = self.expirations = 0
        telemetry.watch_cache(self)

    def get(self, key: str) -> ReasoningResult | None:
        found = self._entries.get(key)
        if found is not None and found[0] <= self.clock.monotonic():
            del self._entries[key]
            self.expirations += 1
            found = None
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: str, result: ReasoningResult) -> None:
        if self.max_entries == 0 or self.ttl == 0:
            return
        self._entries[key] = (self.clock.monotonic() + self.ttl, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def clear(self) -> int:
        """Drop every entry (a new adapter version needs no clearing: it is part of the key)."""
        dropped = len(self._entries)
        self._entries.clear()
        return dropped

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "max_entries": self.max_entries, "ttl": self.ttl, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions, "expirations": self.expirations,
                "hit_rate": round(self.hit_rate, 4)}


class CachedReasoner:
    """A Reasoner in front of another: answers from the cache, and asks `inner` once for identical requests
    that arrive together (the others wait for that answer instead of calling the endpoint too).

    Exports the counter `ml.inference.requests` (attr `cache`: hit|miss|coalesced), the histogram
    `ml.inference.duration` (ms) and the gauge `ml.inference.cache_hit_rate` through services.observability.
    """

    def __init__(self, inner: Reasoner, cache: ResponseCache | None = None, *, clock: Clock | None = None) -> None:
        self.inner = inner
        self.clock = clock or SystemClock()
        self.cache = cache if cache is not None else ResponseCache(clock=self.clock)
        self._reasoning: SingleFlight[str, ReasoningResult] = SingleFlight()

    async def reason(self, request: ReasoningRequest) -> ReasoningResult:
        """The cached answer to `request`, or the inner reasoner's (then cached)."""
        start = self.clock.monotonic()
        key = cache_key(request)
        found = self.cache.get(key)
        if found is not None:
            self._record("hit", request, start)
            return replace(found, cached=True)
        coalesced = self._reasoning.running(key)  # another caller is asking the same: share its answer
        result = await self._reasoning.run(key, lambda: self.inner.reason(request))
        if coalesced:
            self._record("coalesced", request, start)
            return replace(result, cached=True)
        self.cache.put(key, result)
        self._record("miss", request, start)
        return result

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The inner reasoner's chat turn, never cached: a turn depends on tool results that change, and the
        agent's loop commits each turn it gets, so a retried step never asks twice anyway."""
        return await self.inner.chat(request)

    def _record(self, outcome: str, request: ReasoningRequest, start: float) -> None:
        adapter = request.adapter_name or "base"
        telemetry.increment("ml.inference.requests", cache=outcome, adapter=adapter)
        telemetry.histogram("ml.inference.duration", (self.clock.monotonic() - start) * 1000.0,
                            cache=outcome, adapter=adapter)

    async def close(self) -> None:
        await self.inner.close()

"""When enough new preference pairs have arrived for an adapter, a DPO training job is due.

The rule comes from the `learning` config section (`config/self_learning_config.json`): at least
`min_new_pairs` pairs not seen by the previous job, and at least `min_interval` seconds since it. What was
seen is remembered per adapter at `learning/trigger/{adapter}` (the dedupe keys' count and the time), so
a restart does not retrain on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aos_core.clock import SystemClock
from aos_core.config import LearningSettings
from aos_core.errors import ConflictError
from aos_core.ports import Clock, StateStore
from services.learning.dpo import PreferenceDataset
from services.ml.registry import check_adapter_name

PREFIX = "learning/trigger/"


@dataclass(frozen=True, slots=True)
class TrainingDecision:
    """Whether a job is due for `adapter`, how many pairs are new, and why (for logs and the CLI)."""

    adapter: str
    due: bool
    new_pairs: int
    total_pairs: int
    reason: str


class TrainingTrigger:
    """Decide (`check`) and remember (`mark_started`) training jobs per adapter."""

    def __init__(self, store: StateStore, settings: LearningSettings | None = None, *,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.settings = settings or LearningSettings()
        self.clock = clock or SystemClock()

    async def check(self, adapter: str, dataset: PreferenceDataset) -> TrainingDecision:
        """Is a job due for `adapter` with this dataset?"""
        state = await self._state(check_adapter_name(adapter))
        seen = state.get("seen_pairs", 0)
        total = dataset.size
        new = max(0, total - seen)
        if not self.settings.enabled:
            return TrainingDecision(adapter, False, new, total, "self-learning is disabled (learning.enabled)")
        if new < self.settings.min_new_pairs:
            return TrainingDecision(adapter, False, new, total,
                                    f"{new} new pairs; {self.settings.min_new_pairs} needed")
        last = state.get("last_started")
        if last is not None:
            waited = self.clock.now().timestamp() - last
            if waited < self.settings.min_interval:
                reason = f"last job {waited:.0f} s ago; min_interval is {self.settings.min_interval:g} s"
                return TrainingDecision(adapter, False, new, total, reason)
        return TrainingDecision(adapter, True, new, total, f"{new} new pairs >= {self.settings.min_new_pairs}")

    async def mark_started(self, decision: TrainingDecision, job_name: str) -> None:
        """Remember that a job started on `decision.total_pairs` pairs (ConflictError if another process just did)."""
        key = PREFIX + decision.adapter
        doc = await self.store.get(key)
        value = {"seen_pairs": decision.total_pairs, "last_started": self.clock.now().timestamp(),
                 "last_job": job_name}
        if doc is None:
            await self.store.put(key, value, if_none_match=True)
        elif doc.value.get("seen_pairs", 0) > decision.total_pairs - decision.new_pairs:
            raise ConflictError(key, "another job started since this decision was taken")
        else:
            await self.store.put(key, value, if_match=doc.etag)

    async def _state(self, adapter: str) -> dict[str, Any]:
        doc = await self.store.get(PREFIX + adapter)
        return dict(doc.value) if doc else {}

"""Learning from feedback: feedback on decisions, DPO preference datasets, and the training trigger."""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "DecisionLike": "services.learning.dpo",
    "InvalidDatasetError": "services.learning.dpo",
    "PreferenceDataset": "services.learning.dpo",
    "build_dataset": "services.learning.dpo",
    "build_pairs": "services.learning.dpo",
    "read_jsonl": "services.learning.dpo",
    "to_jsonl": "services.learning.dpo",
    "Feedback": "services.learning.feedback",
    "FeedbackCreate": "services.learning.feedback",
    "FeedbackService": "services.learning.feedback",
    "InvalidFeedbackError": "services.learning.feedback",
    "TrainingDecision": "services.learning.trigger",
    "TrainingTrigger": "services.learning.trigger",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)

"""Learning from feedback: feedback on decisions, DPO preference datasets, and the training trigger."""

from __future__ import annotations

from services.learning.dpo import (
    DecisionLike,
    InvalidDatasetError,
    PreferenceDataset,
    build_dataset,
    build_pairs,
    read_jsonl,
    to_jsonl,
)
from services.learning.feedback import Feedback, FeedbackCreate, FeedbackService, InvalidFeedbackError
from services.learning.trigger import TrainingDecision, TrainingTrigger

__all__ = [
    "DecisionLike",
    "Feedback",
    "FeedbackCreate",
    "FeedbackService",
    "InvalidDatasetError",
    "InvalidFeedbackError",
    "PreferenceDataset",
    "TrainingDecision",
    "TrainingTrigger",
    "build_dataset",
    "build_pairs",
    "read_jsonl",
    "to_jsonl",
]

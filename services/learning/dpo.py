"""DPO preference pairs from recorded decisions and their feedback, as validated JSONL with a train/validation split.

Each decision is a prompt (its title, inputs and options considered) and an answer (the option chosen and
the rationale). Feedback rates answers on 0..1 (thumbs up 1, down 0, a score as given) and a correction is
a new answer rated 1 that also rates the agent's answer 0. Answers to the same prompt are then paired
best-against-worse when their ratings differ by at least `min_margin`: `{"prompt", "chosen", "rejected"}`.

Pairs are deduplicated on normalised text, and split by a hash of the prompt, so the split is the same on
every run and one prompt never lands in both training and validation.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aos_core.errors import AOSError
from services.learning.feedback import Feedback


class InvalidDatasetError(AOSError, ValueError):
    """A JSONL line is not a valid preference pair; the message names the line."""


class DecisionLike(Protocol):
    """The fields of a decision record the builder reads (services.governance.decisions.DecisionRecord has them)."""

    id: str
    agent_id: str
    title: str
    inputs: dict[str, Any]
    options: Sequence[Any]  # each with .name, .description
    chosen: str | None
    rationale: str


def decision_prompt(decision: DecisionLike) -> str:
    """The prompt the agent answered, rebuilt from the record (stable key order, so equal inputs match)."""
    lines = [f"Decision: {decision.title}"]
    if decision.inputs:
        lines.append("Inputs: " + json.dumps(decision.inputs, sort_keys=True, ensure_ascii=False))
    if decision.options:
        lines.append("Options:")
        lines += [f"- {o.name}" + (f": {o.description}" if getattr(o, "description", "") else "")
                  for o in decision.options]
    return "\n".join(lines)


def decision_answer(decision: DecisionLike) -> str:
    """The agent's answer as the model would have written it."""
    head = f"Choice: {decision.chosen}\n" if decision.chosen else ""
    return f"{head}Rationale: {decision.rationale}"


def _norm(text: str) -> str:
    return " ".join(text.split())


def pair_key(pair: dict[str, str]) -> str:
    """The dedupe key: SHA-256 of the whitespace-normalised prompt, chosen and rejected."""
    canonical = json.dumps([_norm(pair["prompt"]), _norm(pair["chosen"]), _norm(pair["rejected"])])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def validate_pair(value: Any, where: str = "pair") -> dict[str, str]:
    """`value` as a clean pair, or InvalidDatasetError naming `where` and the problem."""
    if not isinstance(value, dict):
        raise InvalidDatasetError(f"{where}: must be a JSON object")
    extra = set(value) - {"prompt", "chosen", "rejected"}
    if extra:
        raise InvalidDatasetError(f"{where}: unexpected fields {sorted(extra)}")
    for name in ("prompt", "chosen", "rejected"):
        if not isinstance(value.get(name), str) or not value[name].strip():
            raise InvalidDatasetError(f"{where}: {name!r} must be a non-empty string")
    if _norm(value["chosen"]) == _norm(value["rejected"]):
        raise InvalidDatasetError(f"{where}: 'chosen' and 'rejected' are the same text")
    return {"prompt": value["prompt"], "chosen": value["chosen"], "rejected": value["rejected"]}


def read_jsonl(text: str) -> list[dict[str, str]]:
    """Parse and validate a preference JSONL file (blank lines allowed); InvalidDatasetError on the first bad line."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidDatasetError(f"line {number}: not JSON ({exc.msg})") from None
        pairs.append(validate_pair(value, f"line {number}"))
    return pairs


def to_jsonl(pairs: Iterable[dict[str, str]]) -> str:
    return "".join(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n" for p in pairs)


@dataclass
class PreferenceDataset:
    """Pairs split into train and validation; `keys` are the dedupe keys of all of them."""

    train: list[dict[str, str]] = field(default_factory=list)
    validation: list[dict[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.train) + len(self.validation)

    def keys(self) -> set[str]:
        return {pair_key(p) for p in (*self.train, *self.validation)}

    def files(self) -> dict[str, str]:
        """`{"train.jsonl": ..., "validation.jsonl": ...}` (each line re-validated on the way out)."""
        out = {"train.jsonl": to_jsonl(self.train), "validation.jsonl": to_jsonl(self.validation)}
        for text in out.values():
            read_jsonl(text)
        return out

    def manifest(self) -> dict[str, Any]:
        files = self.files()
        return {"train": len(self.train), "validation": len(self.validation),
                "sha256": {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in files.items()}}


def split_of(prompt: str, validation_fraction: float, seed: str = "aos") -> str:
    """'validation' or 'train' for a prompt, from a hash: the same answer on every run and machine."""
    digest = hashlib.sha256(f"{seed}\x00{_norm(prompt)}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction else "train"


def build_pairs(decisions: Iterable[DecisionLike], feedback: Iterable[Feedback], *,
                min_margin: float = 0.2) -> list[dict[str, str]]:
    """Preference pairs, deduplicated, in a stable order (by prompt, then key)."""
    by_decision: dict[str, list[Feedback]] = defaultdict(list)
    for item in feedback:
        by_decision[item.decision_id].append(item)
    # prompt -> answer text -> ratings
    ratings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for decision in decisions:
        items = by_decision.get(decision.id)
        if not items:
            continue
        prompt, answer = decision_prompt(decision), decision_answer(decision)
        for item in items:
            ratings[prompt][answer].append(item.score)  # type: ignore[arg-type]
            if item.kind == "correction" and item.correction:
                ratings[prompt][item.correction].append(1.0)
    pairs: dict[str, dict[str, str]] = {}
    for prompt, answers in ratings.items():
        means = sorted(((sum(v) / len(v), text) for text, v in answers.items()), key=lambda m: (-m[0], m[1]))
        for i, (high, chosen) in enumerate(means):
            for low, rejected in means[i + 1:]:
                if high - low >= min_margin and _norm(chosen) != _norm(rejected):
                    pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
                    pairs.setdefault(pair_key(pair), pair)
    return [pairs[k] for k in sorted(pairs, key=lambda k: (pairs[k]["prompt"], k))]


def build_dataset(decisions: Iterable[DecisionLike], feedback: Iterable[Feedback], *, validation_fraction: float = 0.1,
                  min_margin: float = 0.2, seed: str = "aos") -> PreferenceDataset:
    """Pairs from decisions and feedback, split deterministically by prompt."""
    if not 0 <= validation_fraction < 1:
        raise InvalidDatasetError("validation_fraction must be in [0, 1)")
    dataset = PreferenceDataset()
    for pair in build_pairs(decisions, feedback, min_margin=min_margin):
        getattr(dataset, split_of(pair["prompt"], validation_fraction, seed)).append(validate_pair(pair))
    return dataset

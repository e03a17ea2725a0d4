"""Feedback on recorded decisions -> DPO pairs (validated JSONL, deduped, deterministic split) -> training trigger."""

from __future__ import annotations

from typing import Any

import pytest

from aos_core.config import LearningSettings
from aos_core.errors import ConflictError, NotFoundError
from aos_core.testing import ManualClock, SequentialIds
from services.governance.decisions import DecisionLog
from services.learning import (
    FeedbackService,
    InvalidDatasetError,
    InvalidFeedbackError,
    TrainingTrigger,
    build_dataset,
    read_jsonl,
)
from services.learning.dpo import decision_answer, decision_prompt, split_of
from services.storage import InMemoryStateStore


@pytest.fixture
async def env() -> tuple[DecisionLog, FeedbackService, InMemoryStateStore]:
    store = InMemoryStateStore()
    clock = ManualClock()
    decisions = DecisionLog(store, clock=clock, ids=SequentialIds("dec"))
    return decisions, FeedbackService(store, decisions, clock=clock, ids=SequentialIds("fb")), store


def decision(title: str, chosen: str, rationale: str, **inputs: Any) -> dict[str, Any]:
    return {"agent_id": "ceo", "title": title, "inputs": inputs, "rationale": rationale, "confidence": 0.7,
            "options": [{"name": "expand"}, {"name": "wait"}], "chosen": chosen}


async def test_pairs_from_thumbs_scores_and_corrections(env: Any) -> None:
    decisions, feedback, _ = env
    a = await decisions.record(decision("Enter the EU market?", "expand", "Demand is strong.", region="EU"))
    b = await decisions.record(decision("Enter the EU market?", "wait", "Regulation risk is high.", region="EU"))
    c = await decisions.record(decision("Raise prices?", "expand", "Costs rose."))
    await feedback.submit(a.id, {"kind": "thumbs", "value": "up"}, actor="user:ana")
    await feedback.submit(b.id, {"kind": "score", "value": 0.1})
    await feedback.submit(c.id, {"kind": "correction", "correction": "Choice: wait\nRationale: churn risk."})

    dataset = build_dataset(await decisions.list(), await feedback.all(), validation_fraction=0.0)
    pairs = {(p["prompt"].splitlines()[0], p["chosen"].splitlines()[0], p["rejected"].splitlines()[0])
             for p in dataset.train}
    assert pairs == {("Decision: Enter the EU market?", "Choice: expand", "Choice: wait"),
                     ("Decision: Raise prices?", "Choice: wait", "Choice: expand")}
    eu = next(p for p in dataset.train if "EU" in p["prompt"])
    assert eu["prompt"] == decision_prompt(a) and eu["chosen"] == decision_answer(a)
    assert eu["rejected"] == decision_answer(b)
    assert read_jsonl(dataset.files()["train.jsonl"]) == dataset.train


async def test_close_ratings_make_no_pair_and_duplicates_collapse(env: Any) -> None:
    decisions, feedback, _ = env
    a = await decisions.record(decision("Hire?", "expand", "Pipeline is full."))
    b = await decisions.record(decision("Hire?", "wait", "Budget is tight."))
    await feedback.submit(a.id, {"kind": "score", "value": 0.6})
    await feedback.submit(b.id, {"kind": "score", "value": 0.5})
    assert build_dataset(await decisions.list(), await feedback.all(), min_margin=0.2).size == 0
    # The same decision recorded twice with the same feedback gives one pair, not two.
    for _ in range(2):
        d = await decisions.record(decision("Hire?", "expand", "Pipeline is full."))
        await feedback.submit(d.id, {"kind": "thumbs", "value": "up"})
    await feedback.submit(b.id, {"kind": "thumbs", "value": "down"})
    assert build_dataset(await decisions.list(), await feedback.all(), min_margin=0.2).size == 1


async def test_split_is_deterministic_and_keeps_a_prompt_in_one_split(env: Any) -> None:
    decisions, feedback, _ = env
    for i in range(60):
        for chosen, vote in (("expand", "up"), ("wait", "down")):
            d = await decisions.record(decision(f"Question {i}", chosen, f"Because {chosen}."))
            await feedback.submit(d.id, {"kind": "thumbs", "value": vote})
    records, items = await decisions.list(limit=1000), await feedback.all()
    first = build_dataset(records, items, validation_fraction=0.25)
    again = build_dataset(list(reversed(records)), list(reversed(items)), validation_fraction=0.25)
    assert first.files() == again.files() and first.size == 60
    assert 5 <= len(first.validation) <= 25
    assert not {p["prompt"] for p in first.train} & {p["prompt"] for p in first.validation}
    assert all(split_of(p["prompt"], 0.25) == "validation" for p in first.validation)
    assert first.manifest()["validation"] == len(first.validation)


@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "thumbs", "value": "sideways"}, "value"),
    ({"kind": "thumbs"}, "'up' or 'down'"),
    ({"kind": "score", "value": 1.5}, "from 0 to 1"),
    ({"kind": "score", "value": True}, "boolean"),
    ({"kind": "correction", "correction": "  "}, "non-empty"),
    ({"kind": "thumbs", "value": "up", "correction": "x"}, "takes no 'correction'"),
    ({"kind": "stars", "value": 5}, "kind"),
    ({"kind": "thumbs", "value": "up", "extra": 1}, "extra"),
])
async def test_invalid_feedback_is_rejected_clearly_and_stores_nothing(env: Any, body: dict, message: str) -> None:
    decisions, feedback, _ = env
    d = await decisions.record(decision("Q", "expand", "R"))
    with pytest.raises(InvalidFeedbackError, match=message):
        await feedback.submit(d.id, body)
    assert await feedback.for_decision(d.id) == []


async def test_feedback_on_an_unknown_decision_is_not_found(env: Any) -> None:
    _, feedback, _ = env
    with pytest.raises(NotFoundError):
        await feedback.submit("nope", {"kind": "thumbs", "value": "up"})
    assert await feedback.all() == []


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "p", "chosen": "a"}', "'rejected'"),
    ('{"prompt": "p", "chosen": "a", "rejected": " a "}', "same text"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "x": 1}', "unexpected"),
    ("[1, 2]", "JSON object"),
    ("{not json", "not JSON"),
])
def test_jsonl_validation_names_the_line(line: str, message: str) -> None:
    good = '{"prompt": "p", "chosen": "a", "rejected": "b"}'
    with pytest.raises(InvalidDatasetError, match=f"line 3: .*{message}"):
        read_jsonl(f"{good}\n\n{line}\n")


async def test_trigger_waits_for_enough_new_pairs_and_the_interval(env: Any) -> None:
    decisions, feedback, store = env
    clock = ManualClock()
    trigger = TrainingTrigger(store, LearningSettings(min_new_pairs=3, min_interval=3600), clock=clock)

    async def pairs(n: int) -> Any:
        for i in range(n):
            for chosen, vote in (("expand", "up"), ("wait", "down")):
                d = await decisions.record(decision(f"Q{i}", chosen, f"R {chosen}"))
                await feedback.submit(d.id, {"kind": "thumbs", "value": vote})
        return build_dataset(await decisions.list(limit=1000), await feedback.all())

    small = await pairs(2)
    assert (await trigger.check("ceo", small)).due is False
    enough = await pairs(3)
    due = await trigger.check("ceo", enough)
    assert due.due and due.new_pairs == 3
    await trigger.mark_started(due, "aos-dpo-ceo-1-1-0")
    assert (await trigger.check("ceo", enough)).new_pairs == 0
    with pytest.raises(ConflictError):
        await trigger.mark_started(due, "a-second-job")  # a stale decision cannot start another job
    more = await pairs(6)
    early = await trigger.check("ceo", more)
    assert early.due is False and "min_interval" in early.reason
    await clock.advance(3601)
    assert (await trigger.check("ceo", more)).due is True
    disabled = TrainingTrigger(store, LearningSettings(enabled=False), clock=clock)
    assert (await disabled.check("ceo", more)).due is False

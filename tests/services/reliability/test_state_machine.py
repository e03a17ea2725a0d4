from __future__ import annotations

import pytest

from aos_core.errors import IllegalTransitionError
from services.reliability import InvalidTriggerError, StateMachine

STATES = ["draft", "pending", "approved", "rejected", "cancelled"]
TRANSITIONS = [
    ("draft", "submit", "pending"),
    ("pending", "approve", "approved"),
    ("pending", "reject", "rejected"),
    (["draft", "pending"], "cancel", "cancelled"),
]


def test_transitions_follow_the_table() -> None:
    sm = StateMachine(STATES, TRANSITIONS)
    assert sm.state == "draft"
    assert sm.triggers() == ["cancel", "submit"]
    assert sm.trigger("submit") == "pending"
    assert sm.can("approve") and not sm.can("submit")
    sm.trigger("approve")
    assert sm.history == [("draft", "submit", "pending"), ("pending", "approve", "approved")]


def test_illegal_trigger_changes_nothing() -> None:
    sm = StateMachine(STATES, TRANSITIONS)
    with pytest.raises(InvalidTriggerError, match="'approve' is not allowed in state 'draft'") as info:
        sm.trigger("approve")
    assert isinstance(info.value, IllegalTransitionError)
    assert sm.state == "draft" and sm.history == []


def test_wildcard_source_and_listeners() -> None:
    sm = StateMachine(["a", "b", "dead"], [("a", "go", "b"), ("*", "kill", "dead"),
                                            {"source": "dead", "trigger": "revive", "dest": "a"}])
    seen: list[tuple[str, str, str]] = []
    sm.on_transition(lambda *change: seen.append(change))
    sm.trigger("go")
    sm.trigger("kill")
    sm.trigger("revive")
    assert seen == [("a", "go", "b"), ("b", "kill", "dead"), ("dead", "revive", "a")]


def test_bad_declarations_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown state 'nowhere'"):
        StateMachine(["a"], [("a", "go", "nowhere")])
    with pytest.raises(ValueError, match="two destinations"):
        StateMachine(["a", "b", "c"], [("a", "go", "b"), ("a", "go", "c")])
    with pytest.raises(ValueError):
        StateMachine([], [])
    with pytest.raises(ValueError):
        StateMachine(["a"], [], initial="b")


def test_restore_from_storage() -> None:
    sm = StateMachine(STATES, TRANSITIONS, initial="pending")
    sm.restore("approved")
    assert sm.triggers() == []
    with pytest.raises(ValueError):
        sm.restore("bogus")

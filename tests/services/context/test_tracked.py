"""The tracked state: every change an agent makes in place shows up in the delta, and replaying it is exact."""

from __future__ import annotations

import copy
import random
from typing import Any

from services.context.tracked import Changes, apply_ops, plain, track


def committed(state: dict[str, Any], changes: Changes, before: dict[str, Any]) -> dict[str, Any]:
    """What a reader replaying the delta on `before` gets."""
    after = apply_ops(copy.deepcopy(before), changes.delta(state))
    changes.clear()
    return after


def test_nested_changes_write_only_their_paths() -> None:
    changes = Changes()
    state = track({"total": 0, "by_type": {"a": 1, "b": 2}, "big": {"x": "y" * 1000}}, changes)
    state["total"] += 1
    state["by_type"]["a"] += 1
    state.setdefault("by_type", {}).setdefault("c", 0)
    ops = changes.delta(state)
    assert sorted(op[0] for op in ops) == [["by_type", "a"], ["by_type", "c"], ["total"]]
    assert "y" * 1000 not in repr(ops)


def test_nulls_deletes_lists_and_replacements_replay_exactly() -> None:
    changes = Changes()
    before = {"a": {"b": 1, "c": [1]}, "d": 1, "e": {"f": {}}}
    state = track(copy.deepcopy(before), changes)
    state["a"]["b"] = None  # a JSON null, which a merge patch cannot set
    state["a"]["c"].append(2)  # a list changed in place
    del state["d"]
    state["e"]["f"]["g"] = {"h": 1}
    state["e"]["f"]["g"]["h"] = 2  # under a path written whole
    state[1] = "int key"  # type: ignore[index]  # stored as "1", as JSON does
    assert committed(state, changes, before) == {"a": {"b": None, "c": [1, 2]}, "e": {"f": {"g": {"h": 2}}},
                                                 "1": "int key"}


def test_iteration_and_aliasing_are_tracked() -> None:
    changes = Changes()
    before: dict[str, Any] = {"items": {"k1": {"n": 1}, "k2": {"n": 2}}}
    state = track(copy.deepcopy(before), changes)
    for _, item in state["items"].items():
        item["n"] += 10
    for item in state["items"].values():
        item["seen"] = True
    state["copy"] = state["items"]["k1"]  # stored as a copy: changing one later does not change the other
    state["items"]["k1"]["n"] = 0
    after = committed(state, changes, before)
    assert after == plain(state)
    assert after["copy"] == {"n": 11, "seen": True} and after["items"]["k1"]["n"] == 0


def test_random_changes_replay_to_the_same_state() -> None:
    rng = random.Random(25)
    changes = Changes()
    stored: dict[str, Any] = {}
    state = track({}, changes)
    for _ in range(300):
        node: Any = state
        for _ in range(rng.randrange(3)):  # walk into a nested object, making it if needed
            key = rng.choice("abc")
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        key = rng.choice("abcdxyz")
        action = rng.randrange(5)
        if action == 0:
            node[key] = rng.choice([None, 1, "s", [1, 2], {"n": {"m": 1}}])
        elif action == 1:
            node.pop(key, None)
        elif action == 2 and isinstance(node.get(key), list):
            node[key].append(rng.randrange(9))
        elif action == 3:
            node.update({key: rng.randrange(9)})
        else:
            node.setdefault(key, {})
        if rng.randrange(4) == 0:
            stored = committed(state, changes, stored)
            assert stored == plain(state)
    assert committed(state, changes, stored) == plain(state)

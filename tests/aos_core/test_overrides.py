"""Overrides by id: one item of a configured list changed by name, ids matched the way app settings spell them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from aos_core.overrides import apply_by_id, json_values, setting_key


@dataclass(frozen=True)
class Item:
    id: str
    value: Any = None


def _set(item: Item, override: dict[str, Any]) -> Item:
    return replace(item, value=override["value"])


def test_an_override_changes_only_the_item_it_names() -> None:
    items = [Item("cfo-variance-report"), Item("ceo.weekly")]
    changed = apply_by_id(items, "schedule_overrides", {"cfo_variance_report": {"value": 1}}, _set)
    assert changed == [Item("cfo-variance-report", 1), Item("ceo.weekly")]
    assert items == [Item("cfo-variance-report"), Item("ceo.weekly")]  # the input list is left as it was
    assert setting_key("ceo.Weekly") == "ceo_weekly"


def test_ids_that_one_setting_name_cannot_tell_apart_are_an_error_only_when_overridden() -> None:
    items = [Item("a-b"), Item("a.b")]
    assert apply_by_id(items, "agents.overrides", {}, _set) is items
    with pytest.raises(ValueError, match=r"'a-b' and 'a\.b' have the same setting name 'a_b'"):
        apply_by_id(items, "agents.overrides", {"a_b": {"value": 1}}, _set)


def test_setting_values_that_read_as_json_are_json() -> None:
    assert json_values({"a": "250000", "b": "true", "c": {"d": '["x"]'}, "e": "0 0 8 * * 1", "f": 3}) == {
        "a": 250000, "b": True, "c": {"d": ["x"]}, "e": "0 0 8 * * 1", "f": 3}

"""Overrides by id: app settings that change one configured agent instance or one schedule.

A list in config (`agents.instances`, `schedules`) is replaced whole by a higher layer, so an app setting could
only restate all of it. `agents.overrides` and `schedule_overrides` name one item by its id instead, e.g.
`AOS_AGENTS__OVERRIDES__CFO__BUDGETS__MARKETING=900000`. App setting names are case-insensitive and cannot hold
`-` or `.`, so ids are matched in that form: `cfo-variance-report` is `CFO_VARIANCE_REPORT`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


def setting_key(item_id: str) -> str:
    """An id as it appears in an app setting name: lower case, every character but a-z and 0-9 as `_`."""
    return re.sub(r"[^a-z0-9]", "_", item_id.lower())


def apply_by_id(items: list[T], name: str, overrides: dict[str, dict[str, Any]],
                apply: Callable[[T, dict[str, Any]], T]) -> list[T]:
    """`items` with each override applied to the item it names; ValueError (naming `name`) if it names none."""
    if not overrides:
        return items
    index: dict[str, int] = {}
    for position, item in enumerate(items):
        key = setting_key(item.id)
        if key in index:
            raise ValueError(f"{name}: ids {items[index[key]].id!r} and {item.id!r} have the same setting name "
                             f"{key!r}")
        index[key] = position
    unknown = sorted(key for key in overrides if setting_key(key) not in index)
    if unknown:
        raise ValueError(f"{name}: {', '.join(map(repr, unknown))} names no configured id "
                         f"(ids: {', '.join(sorted(index)) or 'none'})")
    result = list(items)
    for key, override in overrides.items():
        position = index[setting_key(key)]
        result[position] = apply(result[position], override)
    return result


def json_values(value: Any) -> Any:
    """App settings are text: a value that reads as JSON (`250000`, `true`, `{...}`, `[...]`) is taken as JSON."""
    if isinstance(value, dict):
        return {key: json_values(item) for key, item in value.items()}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

"""A context's state that remembers where it was changed, so a commit writes the change, not the whole state.

Agents change `self.state` in place (`state["by_type"][kind] += 1`). `TrackedDict` is a `dict` that marks the
path of every key set or deleted under it; nested objects are wrapped the first time they are read, so a change
deep inside marks only its own path. Lists are not tracked inside: reading one marks it changed as a whole
(it may be appended to). `Changes.delta(state)` turns the marks into operations, `[path, value]` to set and
`[path]` to delete, which `apply_ops` replays exactly (JSON nulls included, which a merge patch cannot set).

An object reachable under two keys (`state["b"] = state["a"]`) would be tracked under one of them only, so a
tracked object stored under another key is stored as a plain copy, as JSON would have it anyway.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from aos_core.ports import JSON

Path = tuple[str, ...]
Op = list[Any]  # [path] deletes, [path, value] sets; path [] is the whole state


class Changes:
    """The paths changed since the last commit."""

    __slots__ = ("_paths",)

    def __init__(self) -> None:
        self._paths: set[Path] = set()

    def mark(self, path: Path) -> None:
        self._paths.add(path)

    def clear(self) -> None:
        self._paths.clear()

    def __bool__(self) -> bool:
        return bool(self._paths)

    @property
    def replaced(self) -> bool:
        """Whether the whole state was replaced since the last commit."""
        return () in self._paths

    def delta(self, state: dict[str, Any]) -> list[Op]:
        """The operations that turn the last committed state into `state` (plain JSON, safe to store)."""
        ops: list[Op] = []
        kept: set[Path] = set()
        for path in sorted(self._paths, key=_parents_first):
            if kept and _inside(path, kept):
                continue  # inside a path already written whole
            kept.add(path)
            found, value = _resolve(state, path)
            ops.append([list(path), plain(value)] if found else [list(path)])
        return ops


def _parents_first(path: Path) -> tuple[int, Path]:
    return len(path), path


def _inside(path: Path, kept: set[Path]) -> bool:
    """Whether a proper prefix of `path` (the whole state included) is in `kept`."""
    for depth in range(len(path)):
        if path[:depth] in kept:
            return True
    return False


class TrackedDict(dict[str, Any]):
    """A dict that marks changed paths in its `Changes`; see the module docstring."""

    __slots__ = ("_changes", "_path")

    def __init__(self, changes: Changes, path: Path, items: dict[str, Any] | None = None) -> None:
        super().__init__(items or {})
        self._changes = changes
        self._path = path

    def _child(self, key: Any, value: Any) -> Any:
        # Wrap a nested object on first read; a list may be changed in place, so reading it marks it.
        if type(value) is dict:
            value = TrackedDict(self._changes, (*self._path, json_key(key)), value)
            dict.__setitem__(self, key, value)
        elif isinstance(value, list) or (isinstance(value, TrackedDict) and value._changes is not self._changes):
            self._changes.mark((*self._path, json_key(key)))
        return value

    def _changed(self, key: Any) -> None:
        self._changes.mark((*self._path, json_key(key)))

    def __getitem__(self, key: Any) -> Any:
        return self._child(key, dict.__getitem__(self, key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self._child(key, dict.__getitem__(self, key)) if key in self else default

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changed(key)
        dict.__setitem__(self, key, plain(value) if isinstance(value, TrackedDict) else value)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._changed(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self._changed(key)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key, value = dict.popitem(self)
        self._changed(key)
        return key, value

    def clear(self) -> None:
        for key in self:
            self._changed(key)
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[key] for key in self]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return [(key, self[key]) for key in self]

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return plain(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (plain(self),)


def track(state: dict[str, Any], changes: Changes) -> TrackedDict:
    """`state` as the root of a tracked state (a new object; `state` itself is left as it is)."""
    return TrackedDict(changes, (), dict.items(state) if isinstance(state, TrackedDict) else state)


def plain(value: Any) -> JSON:
    """A deep copy of `value` made of plain dicts and lists (what is stored and replayed)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in dict.items(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return copy.deepcopy(value) if not isinstance(value, str | int | float | bool | type(None)) else value


def apply_ops(state: dict[str, Any], ops: Iterable[Op]) -> dict[str, Any]:
    """Replay `ops` (from `Changes.delta`) on the plain `state`, in place when it can; returns the state."""
    for op in ops:
        path = op[0]
        if not path:
            state = plain(op[1])
            continue
        parent = state
        for key in path[:-1]:
            parent = parent[key]
        if len(op) > 1:
            parent[path[-1]] = plain(op[1])
        else:
            parent.pop(path[-1], None)
    return state


def json_key(key: Any) -> str:
    """The object key JSON stores for `key` (json.dumps turns 1 into "1" and True into "true")."""
    return key if isinstance(key, str) else json.dumps(key)


def _resolve(state: dict[str, Any], path: Path) -> tuple[bool, Any]:
    node: Any = state
    for key in path:
        if not isinstance(node, dict):
            return False, None
        node = _lookup(node, key)
        if node is _MISSING:
            return False, None
    return True, node


_MISSING = object()


def _lookup(node: dict[str, Any], key: str) -> Any:
    if key in node:
        return dict.__getitem__(node, key)
    for stored in node:  # a key stored as a non-str (1, True) is found under its JSON text
        if not isinstance(stored, str) and json_key(stored) == key:
            return dict.__getitem__(node, stored)
    return _MISSING

"""A small finite state machine declared as data: states and (source, trigger, dest) transitions.

Used for anything with a lifecycle that must never take an illegal step (workflows, risks, approvals):
`sm.trigger("approve")` moves to the declared destination or raises, changing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aos_core.errors import IllegalTransitionError

ANY = "*"  # a transition whose source is "*" applies in every state

Listener = Callable[[str, str, str], None]  # (source, trigger, dest)


class InvalidTriggerError(IllegalTransitionError):
    """`trigger` is not allowed in the current state; nothing was changed."""

    def __init__(self, current: str, trigger: str, allowed: Iterable[str]) -> None:
        super().__init__(current, trigger)
        self.trigger = trigger
        self.allowed = tuple(sorted(allowed))
        self.args = (f"trigger {trigger!r} is not allowed in state {current!r} (allowed: "
                     f"{', '.join(self.allowed) or 'none'})",)


class StateMachine:
    """States, transitions `(source, trigger, dest)` and the current state (default: the first state).

    `source` may be a state, a list of states or "*". Declaring a transition from or to an unknown state, or
    two destinations for one (source, trigger), is a ValueError at construction, not a surprise later.
    """

    def __init__(self, states: Iterable[str], transitions: Iterable[tuple[Any, str, str]] | Iterable[Mapping[str, Any]],
                 initial: str | None = None) -> None:
        self.states: tuple[str, ...] = tuple(states)
        if not self.states or len(set(self.states)) != len(self.states):
            raise ValueError("states must be a non-empty list of distinct names")
        self._table: dict[tuple[str, str], str] = {}
        for item in transitions:
            source, trigger, dest = (item["source"], item["trigger"], item["dest"]) if isinstance(item, Mapping) \
                else item
            sources = self.states if source == ANY else [source] if isinstance(source, str) else list(source)
            for state in [*sources, dest]:
                if state not in self.states:
                    raise ValueError(f"transition {trigger!r} names unknown state {state!r}")
            for src in sources:
                if self._table.get((src, trigger), dest) != dest:
                    raise ValueError(f"trigger {trigger!r} from {src!r} has two destinations")
                self._table[(src, trigger)] = dest
        start = initial if initial is not None else self.states[0]
        if start not in self.states:
            raise ValueError(f"initial state {start!r} is not one of {self.states}")
        self._state = start
        self.history: list[tuple[str, str, str]] = []
        self._listeners: list[Listener] = []

    @property
    def state(self) -> str:
        return self._state

    def triggers(self, state: str | None = None) -> list[str]:
        """The triggers allowed in `state` (default: the current one), sorted."""
        current = self._state if state is None else state
        return sorted(trigger for (src, trigger) in self._table if src == current)

    def can(self, trigger: str) -> bool:
        return (self._state, trigger) in self._table

    def destination(self, trigger: str) -> str:
        """Where `trigger` would lead from the current state; InvalidTriggerError if nowhere."""
        dest = self._table.get((self._state, trigger))
        if dest is None:
            raise InvalidTriggerError(self._state, trigger, self.triggers())
        return dest

    def trigger(self, trigger: str) -> str:
        """Take the transition and return the new state; InvalidTriggerError (nothing changed) if not allowed."""
        source, dest = self._state, self.destination(trigger)
        self._state = dest
        self.history.append((source, trigger, dest))
        for listener in list(self._listeners):
            listener(source, trigger, dest)
        return dest

    def on_transition(self, listener: Listener) -> Listener:
        """Call `listener(source, trigger, dest)` after every transition; usable as a decorator."""
        self._listeners.append(listener)
        return listener

    def restore(self, state: str) -> None:
        """Set the current state from storage (no transition, no listeners)."""
        if state not in self.states:
            raise ValueError(f"unknown state {state!r}")
        self._state = state

    def __repr__(self) -> str:
        return f"StateMachine(state={self._state!r}, states={self.states!r})"

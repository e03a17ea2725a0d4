"""Subscriptions: which agents receive an event.

Two kinds, as in actor frameworks: an *instance* subscription names one agent; a *type* subscription names
an agent type, and the event's `subject` picks the agent of that type (created on first use, like a
Durable entity). Both match the event type with a glob (`order.*`) and, optionally, the topic it came on.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from aos_core.events import ID_PATTERN, AgentId, Event, validate_id

_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Subscription:
    event_type: str
    agent_type: str
    agent_id: str | None = None  # None: a type subscription, routed by the event's subject
    topic: str | None = None
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        validate_id(self.agent_type, "agent type")
        if self.agent_id is not None:
            validate_id(self.agent_id, "agent id")
        if not self.event_type:
            raise ValueError("a subscription needs an event type pattern ('*' for all)")
        if not self.id:
            target = self.agent_id or f"type:{self.agent_type}"
            object.__setattr__(self, "id", f"{target}|{self.event_type}|{self.topic or '*'}")

    def matches(self, event_type: str, topic: str | None) -> bool:
        if self.topic is not None and not fnmatch.fnmatchcase(topic or "", self.topic):
            return False
        return fnmatch.fnmatchcase(event_type, self.event_type)


class Router:
    def __init__(self) -> None:
        self._subscriptions: dict[str, Subscription] = {}
        self._cache: dict[tuple[str, str | None], tuple[Subscription, ...]] = {}

    def add(self, subscription: Subscription) -> Subscription:
        self._subscriptions[subscription.id] = subscription
        self._cache.clear()
        return subscription

    def remove(self, subscription_id: str) -> bool:
        self._cache.clear()
        return self._subscriptions.pop(subscription_id, None) is not None

    def remove_agent(self, agent_id: str) -> None:
        for sub_id in [s.id for s in self._subscriptions.values() if s.agent_id == agent_id]:
            self.remove(sub_id)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    def matching(self, event_type: str, topic: str | None = None) -> tuple[Subscription, ...]:
        key = (event_type, topic)
        found = self._cache.get(key)
        if found is None:
            found = tuple(s for s in self._subscriptions.values() if s.matches(event_type, topic))
            if len(self._cache) > 10_000:  # event types are few in practice; stay bounded anyway
                self._cache.clear()
            self._cache[key] = found
        return found

    def route(self, event: Event, topic: str | None = None) -> list[AgentId]:
        """The agents that receive `event`, each once, in subscription order."""
        targets: dict[str, AgentId] = {}
        for sub in self.matching(event.type, topic):
            key = sub.agent_id
            if key is None:
                subject = event.subject
                if subject is None or not _ID.match(subject):
                    continue
                key = subject
            targets.setdefault(key, AgentId(sub.agent_type, key))
        return list(targets.values())

"""What an agent sees while it handles one event: the event, the clock, an outbox, and governance ports.

Events an agent publishes or sends are queued in the outbox and dispatched only after the agent's state
for this event is committed, so a crash never leaves a message out for a change that did not happen.
Outgoing ids are derived from the incoming event id, the agent and the position in the outbox: handling the
same event again (a redelivery, a lost commit race) produces the same ids, so downstream dedupe drops copies.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aos_core.events import Event, validate_id
from aos_core.ports import JSON, AuditLog, Clock, Policy

_OUTBOX_NAMESPACE = uuid.UUID("5b0c1f2e-8a41-4d0f-9a47-2f6f6c1a0b7e")


@dataclass
class Outgoing:
    event: Event
    to_agent: str | None = None  # None: routed by subscriptions


def outbox_entry(event: Event, to_agent: str | None) -> dict[str, Any]:
    """A message or published event as a context's outbox keeps it until it is handed on."""
    return {"id": event.id, "event": event.to_dict(), "to_agent": to_agent}


@dataclass
class AgentContext:
    agent_id: str
    event: Event
    clock: Clock
    outbox: list[Outgoing] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)  # started after the commit, like the outbox
    audit: AuditLog | None = None  # the kernel's audit log, for decision records and risks the agent writes
    policy: Policy | None = None  # the kernel's policies, for checks such as spending thresholds

    def now(self) -> datetime:
        return self.clock.now()

    def outgoing(self) -> list[dict[str, Any]]:
        """What this handling sends, as outbox entries (`{"id", "event", "to_agent"}` or `{"id", "workflow"}`):
        a perpetual agent commits them with its state, and the kernel hands them on after the commit."""
        return [*(outbox_entry(out.event, out.to_agent) for out in self.outbox),
                *({"id": spec["id"], "workflow": spec} for spec in self.workflows)]

    def publish(self, event_type: str, data: JSON = None, *, subject: str | None = None) -> Event:
        """Queue an event for everyone subscribed to `event_type`, in this event's conversation."""
        event = self._derive(event_type, data, subject)
        self.outbox.append(Outgoing(event))
        return event

    def send(self, to_agent: str, message_type: str, data: JSON = None) -> Event:
        """Queue a direct message to one agent, in this event's conversation."""
        validate_id(to_agent, "agent id")
        event = self._derive(message_type, data, to_agent)
        self.outbox.append(Outgoing(event, to_agent=to_agent))
        return event

    @property
    def sender(self) -> str | None:
        """The agent that sent the current event, or None when a person or a system did."""
        source = self.event.source
        return source.removeprefix("agents/") if source.startswith("agents/") else None

    def reply(self, message_type: str, data: JSON = None) -> Event | None:
        """Send a message back to the agent that sent the current event, if an agent sent it."""
        sender = self.sender
        return self.send(sender, message_type, data) if sender else None

    def start_workflow(self, purpose: str, name: str, steps: list[dict[str, Any]], input: JSON = None) -> str:
        """Queue a workflow (steps as in `aos_core.workflow`) to start after this event's commit; returns its id,
        derived from the event, so handling the event again names the same workflow and starts nothing new."""
        readable = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{self.agent_id}-{purpose}")[:60]
        workflow_id = f"{readable}-{self.stable_id(f'workflow|{purpose}')[:8]}"
        self.workflows.append({"id": workflow_id, "name": name, "steps": steps, "input": input})
        return workflow_id

    def stable_id(self, purpose: str) -> str:
        """An id that is the same every time this event is handled by this agent (for records written as a
        side effect, such as decisions: a redelivery finds the first record instead of writing a second)."""
        return str(uuid.uuid5(_OUTBOX_NAMESPACE, f"{self.event.id}|{self.agent_id}|{purpose}"))

    def _derive(self, event_type: str, data: JSON, subject: str | None) -> Event:
        event_id = uuid.uuid5(_OUTBOX_NAMESPACE, f"{self.event.id}|{self.agent_id}|{len(self.outbox)}")
        return Event(
            id=str(event_id), source=f"agents/{self.agent_id}", type=event_type, subject=subject, data=data,
            time=self.clock.now(),
            correlationid=self.event.correlationid or self.event.id, traceparent=self.event.traceparent,
        )

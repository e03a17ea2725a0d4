"""What the kernel needs of an agent, and where agents run: dispatchers, orchestrations, secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aos_core.events import AgentId, Event
from aos_core.ports.basics import JSON


@dataclass(frozen=True, slots=True)
class AgentResult:
    """What one agent did with one event. `status` is never "completed" for a failure."""

    agent_id: str
    status: str  # "completed" | "failed" | "duplicate" | "rejected" | "accepted" (handed to its mailbox elsewhere)
    result: JSON = None
    error: str | None = None
    extra: dict[str, JSON] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"agent_id": self.agent_id, "status": self.status, "result": self.result}
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> AgentResult:
        known = {"agent_id", "status", "result", "error"}
        return cls(str(value["agent_id"]), str(value["status"]), value.get("result"), value.get("error"),  # type: ignore[arg-type]
                   {k: v for k, v in value.items() if k not in known})


class Dispatcher(Protocol):
    """Delivers events to one agent through that agent's serial mailbox."""

    async def deliver(self, agent_id: AgentId, event: Event) -> AgentResult: ...

    async def deliver_many(self, agent_id: AgentId, events: list[Event]) -> list[AgentResult]:
        """`deliver` for several events to one agent, in order (one hand-over where the mailbox allows)."""
        ...

    async def close(self) -> None: ...


class Orchestrations(Protocol):
    """Starts workflows as durable orchestrations (`aos_workflow` on Durable Functions when hosted), once per id."""

    async def start(self, workflow_id: str, definition: dict[str, Any], *, started_by: str) -> None: ...


# --- secrets ------------------------------------------------------------------------------------


class SecretStore(Protocol):
    async def get_secret(self, name: str) -> str | None:
        """The secret's value, or None when it is not set. Never log it."""
        ...


class Agent(Protocol):
    """What the kernel needs of an agent (agents.BaseAgent implements it)."""

    agent_id: str
    agent_type: str
    perpetual: bool
    depends_on: tuple[str, ...]

    @property
    def all_capabilities(self) -> tuple[str, ...]: ...

    async def initialize(self) -> None: ...

    async def process(self, event: Event, ctx: Any, *, durable: bool = True, retries: int = 5) -> tuple[str, JSON]: ...

    async def health_check(self) -> bool | str: ...

    async def sleep(self) -> None: ...

    async def shutdown(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...

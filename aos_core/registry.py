"""The agent registry: agent types in memory, agent instances as rows in the StateStore.

A registered agent that is not running costs one stored row (`registry/agents/<id>`), not memory, so a
host can know of far more agents than it keeps live. Discovery reads those rows.

Every change that routing depends on (a registration, a change of subscriptions, a termination) also bumps
the registry generation (`registry/generation`: a number and the ids changed lately), so every worker can
see with one read whether its routing is current, and reload only the agents that changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aos_core.errors import ConflictError, NotFoundError, RegistrationError
from aos_core.events import validate_id
from aos_core.generations import GenerationLog
from aos_core.ports import Document, StateStore

_PREFIX = "registry/agents/"
GENERATION_KEY = "registry/generation"


@dataclass
class AgentRecord:
    """One registered agent as stored: enough to recreate it after it was evicted or the host restarted."""

    id: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    lifecycle: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    etag: str | None = None

    @property
    def state(self) -> str:
        return str(self.lifecycle.get("state", "created"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "config": self.config, "depends_on": self.depends_on,
                "capabilities": self.capabilities, "lifecycle": self.lifecycle, "created_at": self.created_at}

    @classmethod
    def from_dict(cls, value: dict[str, Any], etag: str | None = None) -> AgentRecord:
        return cls(id=value["id"], type=value["type"], config=value.get("config") or {},
                   depends_on=list(value.get("depends_on") or []), capabilities=list(value.get("capabilities") or []),
                   lifecycle=value.get("lifecycle") or {}, created_at=value.get("created_at", ""), etag=etag)


class AgentRegistry:
    """Agent types (name -> class) and the stored agent records."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._generation = GenerationLog(store, GENERATION_KEY)
        self._types: dict[str, Any] = {}

    # --- types ---------------------------------------------------------------------------------------

    def register_type(self, name: str, agent_class: Any) -> None:
        validate_id(name, "agent type")
        existing = self._types.get(name)
        if existing is not None and existing is not agent_class:
            raise RegistrationError(f"agent type {name!r} is already registered to {existing.__qualname__}")
        self._types[name] = agent_class

    def agent_class(self, name: str) -> Any:
        try:
            return self._types[name]
        except KeyError:
            raise RegistrationError(f"unknown agent type {name!r}; known: {sorted(self._types)}") from None

    def has_type(self, name: str) -> bool:
        return name in self._types

    @property
    def types(self) -> dict[str, Any]:
        return dict(self._types)

    # --- records -------------------------------------------------------------------------------------

    async def add(self, record: AgentRecord) -> AgentRecord:
        """Store a new record; RegistrationError if the id is taken by another type or config."""
        validate_id(record.id, "agent id")
        try:
            record.etag = await self._store.put(_PREFIX + record.id, record.to_dict(), if_none_match=True)
            return record
        except ConflictError:
            existing = await self.get(record.id)
            if existing is None:
                raise
            if existing.type != record.type:
                raise RegistrationError(
                    f"agent id {record.id!r} is already registered as type {existing.type!r}") from None
            return existing

    async def get(self, agent_id: str) -> AgentRecord | None:
        doc = await self._store.get(_PREFIX + agent_id)
        return AgentRecord.from_dict(doc.value, doc.etag) if doc else None

    async def require(self, agent_id: str) -> AgentRecord:
        record = await self.get(agent_id)
        if record is None:
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        return record

    async def save(self, record: AgentRecord) -> AgentRecord:
        """Write a changed record under its ETag (ConflictError if someone else changed it)."""
        record.etag = await self._store.put(_PREFIX + record.id, record.to_dict(), if_match=record.etag)
        return record

    async def changed(self, agent_id: str) -> int:
        """Record that routing to `agent_id` changed; the new generation number."""
        return await self._generation.record(agent_id)

    async def generation(self) -> Document | None:
        """The registry generation document (`{"generation": n, "changes": [[n, agent id], ...]}`), if any."""
        return await self._store.get(GENERATION_KEY)

    async def generation_etag(self) -> str | None:
        """The ETag of the generation document (None if there is none): whether it changed, without reading it."""
        return await self._store.etag(GENERATION_KEY)

    async def remove(self, agent_id: str) -> bool:
        return await self._store.delete(_PREFIX + agent_id)

    async def iterate(self, *, page_size: int = 500) -> AsyncIterator[AgentRecord]:
        after: str | None = None
        while True:
            docs = await self._store.list(_PREFIX, start_after=after, limit=page_size)
            for doc in docs:
                yield AgentRecord.from_dict(doc.value, doc.etag)
            if len(docs) < page_size:
                return
            after = docs[-1].key

    async def find(self, *, capability: str | None = None, agent_type: str | None = None,
                   state: str | None = None, limit: int = 1000) -> list[AgentRecord]:
        """Discovery: agents with a capability, of a type, or in a lifecycle state."""
        found: list[AgentRecord] = []
        async for record in self.iterate():
            if capability is not None and capability not in record.capabilities:
                continue
            if agent_type is not None and record.type != agent_type:
                continue
            if state is not None and record.state != state:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

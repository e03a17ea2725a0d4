"""AgentIndex on Azure Table Storage (azure-data-tables, async): agents by id, by type, capability and state.

One partition holds an agent row (`agent|<id>`) and its lookup rows (`type|<type>|<id>`, `cap|<cap>|<id>`,
`state|<state>|<id>`). Every change is one entity-group transaction whose first operation updates the agent row
under its ETag (`MatchConditions.IfNotModified`) or creates it: the lookups can never disagree with the agent
row, and of two concurrent writers exactly one wins; the other gets ConflictError. Imported only for Azure.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from aos_core.errors import ConflictError
from aos_core.events import validate_id
from aos_core.ports import AgentIndexEntry
from services.storage.outages import outages_unavailable

if TYPE_CHECKING:
    from services.storage.connections import StorageConnection

DEFAULT_TABLE = "aosagents"
DEFAULT_PARTITION = "agents"
_MAX_CAPABILITIES = 30  # 1 agent row + type + state + capabilities, twice on a change, within 100 operations


class TableHandle:
    """A table client that creates its table on first use (shared by the index and the audit log)."""

    def __init__(self, connection: StorageConnection | None, service_client: Any, table: str) -> None:
        if (connection is None) == (service_client is None):
            raise ValueError("pass exactly one of connection or service_client")
        self._connection = connection
        self._service = service_client
        self._credential: Any = None
        self.name = table
        self._client: Any = None

    async def client(self) -> Any:
        if self._client is None:
            if self._service is None:
                assert self._connection is not None
                self._credential = self._connection.credential()
                self._service = self._connection.table_service_client(self._credential)
            client = self._service.get_table_client(self.name)
            try:
                await client.create_table()
            except ResourceExistsError:
                pass
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        if self._connection is not None:
            service, self._service = self._service, None
            if service is not None:
                await service.close()
            if self._credential is not None:
                await self._credential.close()
                self._credential = None


def _key(value: str) -> str:
    # RowKeys refuse / \ # ? and control characters; `|` separates the parts, so it is escaped too.
    return quote(value, safe="")


def _check_state(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{what} must be a non-empty str of at most 200 characters, got {value!r}")
    return value


class TableAgentIndex:
    """AgentIndex on one Table Storage table (default `aosagents`), one partition (default `agents`)."""

    def __init__(self, connection: StorageConnection | None = None, *, service_client: Any = None,
                 table: str = DEFAULT_TABLE, partition: str = DEFAULT_PARTITION) -> None:
        self._table = TableHandle(connection, service_client, table)
        self.partition = partition

    @staticmethod
    def _rows(entry: AgentIndexEntry) -> list[str]:
        rows = [f"type|{_key(entry.agent_type)}|{entry.agent_id}", f"state|{_key(entry.state)}|{entry.agent_id}"]
        rows += [f"cap|{_key(cap)}|{entry.agent_id}" for cap in sorted(set(entry.capabilities))]
        return rows

    def _entity(self, row: str, entry: AgentIndexEntry) -> dict[str, Any]:
        return {"PartitionKey": self.partition, "RowKey": row, "agent_id": entry.agent_id, "type": entry.agent_type,
                "state": entry.state, "capabilities": json.dumps(list(entry.capabilities))}

    def _entry(self, entity: Any, *, etag: bool = True) -> AgentIndexEntry:
        return AgentIndexEntry(entity["agent_id"], entity["type"], entity["state"],
                               tuple(json.loads(entity["capabilities"])), entity.metadata.get("etag") if etag else None)

    @outages_unavailable
    async def get(self, agent_id: str) -> AgentIndexEntry | None:
        """The agent's entry, or None."""
        validate_id(agent_id, "agent id")
        client = await self._table.client()
        try:
            return self._entry(await client.get_entity(self.partition, f"agent|{agent_id}"))
        except ResourceNotFoundError:
            return None

    @outages_unavailable
    async def put(self, entry: AgentIndexEntry, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `entry` and its lookup rows in one transaction; return the agent row's new ETag.

        Without `if_match` the current version is read and the write is conditional on it anyway, so a
        concurrent writer makes this raise ConflictError instead of leaving lookups for a stale version.
        """
        validate_id(entry.agent_id, "agent id")
        validate_id(entry.agent_type, "agent type")
        _check_state(entry.state, "state")
        for cap in entry.capabilities:
            _check_state(cap, "capability")
        if len(set(entry.capabilities)) > _MAX_CAPABILITIES:
            raise ValueError(f"an agent may have at most {_MAX_CAPABILITIES} capabilities in the index")
        if if_match is not None and if_none_match:
            raise ValueError("if_match and if_none_match cannot be combined")
        current = None if if_none_match else await self.get(entry.agent_id)
        if if_match is not None and (current is None or current.etag != if_match):
            raise ConflictError(f"agent|{entry.agent_id}", "ETag does not match (stale or missing)")
        main = self._entity(f"agent|{entry.agent_id}", entry)
        ops: list[tuple[Any, ...]] = []
        if current is None:
            ops.append(("create", main))
        else:
            ops.append(("update", main, {"mode": "replace", "etag": current.etag,
                                         "match_condition": MatchConditions.IfNotModified}))
        new_rows = self._rows(entry)
        old_rows = [] if current is None else self._rows(current)
        ops += [("delete", {"PartitionKey": self.partition, "RowKey": row}) for row in old_rows if row not in new_rows]
        ops += [("upsert", self._entity(row, entry), {"mode": "replace"}) for row in new_rows]
        return str((await self._submit(entry.agent_id, ops))[0]["etag"])

    @outages_unavailable
    async def remove(self, agent_id: str, *, if_match: str | None = None) -> bool:
        """Remove the agent and its lookups; False if it was not indexed. ConflictError on a stale `if_match`."""
        current = await self.get(agent_id)
        if current is None or (if_match is not None and current.etag != if_match):
            if if_match is not None:
                raise ConflictError(f"agent|{agent_id}", "ETag does not match (stale or missing)")
            return False
        ops: list[tuple[Any, ...]] = [("delete", {"PartitionKey": self.partition, "RowKey": f"agent|{agent_id}"},
                                       {"etag": current.etag, "match_condition": MatchConditions.IfNotModified})]
        ops += [("delete", {"PartitionKey": self.partition, "RowKey": row}) for row in self._rows(current)]
        await self._submit(agent_id, ops)
        return True

    async def _submit(self, agent_id: str, ops: list[tuple[Any, ...]]) -> list[Any]:
        client = await self._table.client()
        try:
            return list(await client.submit_transaction(ops))
        except HttpResponseError as exc:
            if exc.status_code in (404, 409, 412):  # another writer changed, created or removed it first
                raise ConflictError(f"agent|{agent_id}", "changed by another writer") from None
            raise

    async def _lookup(self, kind: str, value: str) -> list[AgentIndexEntry]:
        start = f"{kind}|{_key(value)}|"
        end = start[:-1] + chr(ord("|") + 1)
        client = await self._table.client()
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        entities = client.query_entities(query, parameters={"pk": self.partition, "lo": start, "hi": end})
        # Lookup rows carry their own ETags, not the agent row's: read `get` before a conditional put.
        return [self._entry(entity, etag=False) async for entity in entities]

    @outages_unavailable
    async def by_type(self, agent_type: str) -> list[AgentIndexEntry]:
        """Agents of `agent_type`, by id (without ETags: use `get` before a conditional put)."""
        return await self._lookup("type", agent_type)

    @outages_unavailable
    async def by_capability(self, capability: str) -> list[AgentIndexEntry]:
        """Agents that declare `capability`, by id."""
        return await self._lookup("cap", capability)

    @outages_unavailable
    async def by_state(self, state: str) -> list[AgentIndexEntry]:
        """Agents in lifecycle `state`, by id."""
        return await self._lookup("state", state)

    async def close(self) -> None:
        await self._table.close()


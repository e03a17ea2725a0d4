"""AuditLog on Azure Table Storage: append-only rows whose hash chain stays valid with concurrent appenders.

One partition holds the entries (RowKey = zero-padded seq, so rows sort by seq) and a `head` row with the last
seq and hash. An append reads the head, builds the next entry with `chain.make_entry`, and writes the new row
and the head in one entity-group transaction conditional on the head's ETag: two appenders can never both
take the same seq, and the one that loses the race re-reads the head and retries. Hashing and verification
are `services.governance.chain`; nothing here computes a hash of its own. Imported only for Azure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from aos_core.clock import SystemClock
from aos_core.errors import ConflictError
from aos_core.ports import JSON, AuditEntry, AuditVerification, Clock
from services.governance.chain import (
    GENESIS_HASH,
    ChainVerifier,
    InvalidAuditEntry,
    PreparedEntry,
    check_page,
    prepare_entry,
)
from services.storage.outages import outages_unavailable
from services.storage.tables import TableHandle

if TYPE_CHECKING:
    from services.storage.connections import StorageConnection

DEFAULT_TABLE = "aosaudit"
HEAD = "head"  # sorts after every zero-padded seq row
_SEQ_WIDTH = 12
_MAX_PAYLOAD_CHARS = 30_000  # a Table string property holds 64 KiB of UTF-16


def _row(seq: int) -> str:
    return f"{seq:0{_SEQ_WIDTH}d}"


class TableAuditLog:
    """AuditLog on one Table Storage table (default `aosaudit`), one partition per log (default `audit`)."""

    def __init__(self, connection: StorageConnection | None = None, *, service_client: Any = None,
                 table: str = DEFAULT_TABLE, log: str = "audit", clock: Clock | None = None,
                 hmac_key: bytes | str | None = None, max_attempts: int = 200) -> None:
        self._table = TableHandle(connection, service_client, table)
        self.partition = log
        self._clock = clock or SystemClock()
        self._key = hmac_key.encode("utf-8") if isinstance(hmac_key, str) else hmac_key
        self._max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"TableAuditLog(table={self._table.name!r}, log={self.partition!r})"  # never the key

    async def _head(self, client: Any) -> tuple[int, str, str | None]:
        """(last seq, last hash, head ETag); (0, "", None) for an empty log."""
        try:
            head = await client.get_entity(self.partition, HEAD)
        except ResourceNotFoundError:
            return 0, "", None
        return int(head["seq"]), str(head["hash"]), head.metadata["etag"]

    @outages_unavailable
    async def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last entry, or None for an empty log."""
        seq, digest, _ = await self._head(await self._table.client())
        return (seq, digest) if seq else None

    @outages_unavailable
    async def append(self, actor: str, action: str, subject: str, payload: JSON = None) -> AuditEntry:
        """Append one entry (next seq, linked to the previous hash) and return it once stored."""
        return await self._append(self._prepare(actor, action, subject, payload))

    @outages_unavailable
    async def append_many(self, items: Sequence[tuple[str, str, str, JSON]]) -> list[AuditEntry]:
        """Append the entries one after another, in this order (each is its own Table transaction)."""
        prepared = [self._prepare(*item) for item in items]  # all validated before the first is written
        return [await self._append(entry) for entry in prepared]

    def _prepare(self, actor: str, action: str, subject: str, payload: JSON) -> PreparedEntry:
        prepared = prepare_entry(self._clock.now(), actor, action, subject, payload)  # validates before any write
        if len(prepared.payload_json) > _MAX_PAYLOAD_CHARS:
            raise InvalidAuditEntry(f"audit payload is {len(prepared.payload_json)} characters of JSON; Table "
                                    f"Storage allows {_MAX_PAYLOAD_CHARS}")
        return prepared

    async def _append(self, prepared: PreparedEntry) -> AuditEntry:
        actor, action, subject, text = prepared.actor, prepared.action, prepared.subject, prepared.payload_json
        client = await self._table.client()
        for _ in range(self._max_attempts):
            seq, last_hash, etag = await self._head(client)
            entry = prepared.link(seq + 1, last_hash or GENESIS_HASH, self._key)
            row = {"PartitionKey": self.partition, "RowKey": _row(entry.seq), "seq": entry.seq,
                   "time": entry.time.isoformat(), "actor": actor, "action": action, "subject": subject,
                   "payload": text, "payload_hash": entry.payload_hash, "prev_hash": entry.prev_hash,
                   "hash": entry.hash}
            head = {"PartitionKey": self.partition, "RowKey": HEAD, "seq": entry.seq, "hash": entry.hash}
            ops: list[tuple[Any, ...]] = [("create", row)]
            if etag is None:
                ops.append(("create", head))
            else:
                ops.append(("update", head, {"mode": "replace", "etag": etag,
                                             "match_condition": MatchConditions.IfNotModified}))
            try:
                await client.submit_transaction(ops)
                return entry
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412):
                    raise
                # another appender took this seq first: read the new head and link to it
        raise ConflictError(f"audit/{self.partition}", f"lost {self._max_attempts} append races in a row")

    @outages_unavailable
    async def entries(self, after: int = 0, limit: int = 100, actor: str | None = None, action: str | None = None,
                      subject: str | None = None) -> list[AuditEntry]:
        """Entries with seq > `after` in seq order, at most `limit`, filtered by exact actor/action/subject."""
        check_page(after, limit)
        out: list[AuditEntry] = []
        async for entry in self._scan(after, actor=actor, action=action, subject=subject):
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    async def _scan(self, after: int, **equal: str | None) -> Any:
        client = await self._table.client()
        query = "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @head"
        params: dict[str, Any] = {"pk": self.partition, "lo": _row(max(after, 0)), "head": HEAD}
        for name, value in equal.items():
            if value is not None:
                query += f" and {name} eq @{name}"
                params[name] = value
        async for row in client.query_entities(query, parameters=params, results_per_page=1000):
            yield _entry(row)

    @outages_unavailable
    async def verify(self) -> AuditVerification:
        """Check the whole chain against the recorded head; names the first bad seq and why."""
        head = await self.head()
        verifier = ChainVerifier(self._key)
        async for entry in self._scan(0):
            if not verifier.feed(entry):
                break
        return verifier.result(head)

    async def close(self) -> None:
        await self._table.close()


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(seq=int(row["seq"]), time=datetime.fromisoformat(row["time"]), actor=row["actor"],
                      action=row["action"], subject=row["subject"], payload=json.loads(row["payload"]),
                      payload_hash=row["payload_hash"], prev_hash=row["prev_hash"], hash=row["hash"])

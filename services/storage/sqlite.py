"""The embedded StateStore and BlobStore: one SQLite file in WAL mode, served by `services.sqlite`."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import JSON, Document
from services.sqlite import SqliteDatabase
from services.storage.keys import (
    EtagFactory,
    blob_bytes,
    check_blob_name,
    check_container,
    check_key,
    check_limit,
    check_preconditions,
    check_prefix,
    decode_value,
    encode_value,
    prefix_end,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (container, name)
);
"""

_KEYS_PER_QUERY = 500  # well under SQLite's limit on a statement's parameters
_INSERT = "INSERT INTO documents (key, value, etag, updated) VALUES (?, ?, ?, ?)"
_UPSERT = (
    f"{_INSERT} "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, updated = excluded.updated"
)


def _range(column: str, prefix: str, start_after: str | None = None) -> tuple[str, list[str]]:
    """A WHERE clause selecting `column` values that start with `prefix` (and sort after `start_after`)."""
    if start_after is not None and start_after >= prefix:
        clauses, args = [f"{column} > ?"], [start_after]
    else:
        clauses, args = [f"{column} >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append(f"{column} < ?")
        args.append(end)
    return " AND ".join(clauses), args


class SqliteStateStore:
    """JSON documents with ETags and blobs in one SQLite file (WAL); implements StateStore and BlobStore.

    Every precondition check runs in the same `db.write` as the write it guards, so it is atomic; concurrent
    writes are group-committed by `SqliteDatabase`.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.db = SqliteDatabase(path, schema=SCHEMA, synchronous=synchronous)
        self._etags = EtagFactory()

    @property
    def path(self) -> str:
        return self.db.path

    def readiness(self) -> str | None:
        """None when the store can take writes; else why not (for `GET /api/health?ready=1`)."""
        return self.db.readiness()

    # --- documents ----------------------------------------------------------------------------------

    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        check_key(key)
        row = await self.db.read(
            lambda conn: conn.execute("SELECT value, etag FROM documents WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else Document(key, decode_value(row[0]), row[1])

    async def etag(self, key: str) -> str | None:
        """The ETag of the document at `key`, or None (the value is not read)."""
        check_key(key)
        row = await self.db.read(lambda conn: conn.execute("SELECT etag FROM documents WHERE key = ?", (key,)
                                                           ).fetchone())
        return None if row is None else str(row[0])

    async def get_many(self, keys: Sequence[str]) -> builtins.list[Document | None]:
        """The document at each key, or None, read together."""
        wanted = [check_key(key) for key in keys]

        def read(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
            found: dict[str, tuple[str, str]] = {}
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start:start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                for key, value, etag in conn.execute(
                        f"SELECT key, value, etag FROM documents WHERE key IN ({marks})", chunk):
                    found[key] = (value, etag)
            return found

        found = await self.db.read(read) if wanted else {}
        return [None if key not in found else Document(key, decode_value(found[key][0]), found[key][1])
                for key in wanted]

    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return its new ETag; ConflictError when `if_match`/`if_none_match` does not hold."""
        check_key(key)
        check_preconditions(if_match, if_none_match)
        text = encode_value(value)  # before anything is queued: a bad value never reaches the database
        etag = self._etags.new()
        updated = datetime.now(UTC).isoformat()

        def write(conn: sqlite3.Connection) -> str:
            if if_match is not None:
                cur = conn.execute(
                    "UPDATE documents SET value = ?, etag = ?, updated = ? WHERE key = ? AND etag = ?",
                    (text, etag, updated, key, if_match),
                )
                if cur.rowcount == 0:
                    raise ConflictError(key, "ETag does not match (stale or missing)")
            elif if_none_match:
                try:
                    conn.execute(_INSERT, (key, text, etag, updated))
                except sqlite3.IntegrityError:
                    raise ConflictError(key, "already exists") from None
            else:
                conn.execute(_UPSERT, (key, text, etag, updated))
            return etag

        return await self.db.write(write, one_statement=True)

    async def create_many(self, items: Sequence[tuple[str, JSON]]) -> builtins.list[str | None]:
        """Create each document whose key does not exist yet, in one transaction: its ETag, or None where the key
        existed."""
        rows = [(check_key(key), encode_value(value), self._etags.new()) for key, value in items]
        updated = datetime.now(UTC).isoformat()

        def write(conn: sqlite3.Connection) -> builtins.list[str | None]:
            created: builtins.list[str | None] = []
            for key, text, etag in rows:
                try:
                    conn.execute(_INSERT, (key, text, etag, updated))
                except sqlite3.IntegrityError:  # the key exists: SQLite undid this statement only
                    created.append(None)
                else:
                    created.append(etag)
            return created

        return await self.db.write(write, one_statement=len(rows) == 1) if rows else []

    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. With `if_match`, ConflictError if stale or missing."""
        check_key(key)
        check_preconditions(if_match, False)

        def write(conn: sqlite3.Connection) -> bool:
            if if_match is None:
                return conn.execute("DELETE FROM documents WHERE key = ?", (key,)).rowcount > 0
            if conn.execute("DELETE FROM documents WHERE key = ? AND etag = ?", (key, if_match)).rowcount == 0:
                raise ConflictError(key, "ETag does not match (stale or missing)")
            return True

        return await self.db.write(write, one_statement=True)

    async def list(self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000) -> list[Document]:
        """Documents whose key starts with `prefix`, in key order, after `start_after`, at most `limit`."""
        check_prefix(prefix)
        if start_after is not None:
            check_prefix(start_after, "start_after")
        check_limit(limit)
        where, args = _range("key", prefix, start_after)
        sql = f"SELECT key, value, etag FROM documents WHERE {where} ORDER BY key LIMIT ?"
        rows = await self.db.read(lambda conn: conn.execute(sql, (*args, limit)).fetchall())
        # decoded here, not on the database thread, so the single writer thread is not kept busy with JSON
        return [Document(key, decode_value(text), etag) for key, text, etag in rows]

    async def count(self, prefix: str = "") -> int:
        """How many documents have a key starting with `prefix`."""
        check_prefix(prefix)
        where, args = _range("key", prefix)
        sql = f"SELECT count(*) FROM documents WHERE {where}"
        return await self.db.read(lambda conn: conn.execute(sql, args).fetchone()[0])

    # --- blobs --------------------------------------------------------------------------------------

    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag; ConflictError if it exists and not `overwrite`."""
        check_container(container)
        check_blob_name(name)
        payload = blob_bytes(data)
        etag = self._etags.new()

        def write(conn: sqlite3.Connection) -> str:
            if overwrite:
                conn.execute(
                    "INSERT INTO blobs (container, name, data, etag) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (container, name) DO UPDATE SET data = excluded.data, etag = excluded.etag",
                    (container, name, payload, etag),
                )
            else:
                try:
                    conn.execute(
                        "INSERT INTO blobs (container, name, data, etag) VALUES (?, ?, ?, ?)",
                        (container, name, payload, etag),
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(f"{container}/{name}", "blob already exists") from None
            return etag

        return await self.db.write(write)

    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        check_container(container)
        check_blob_name(name)
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT data FROM blobs WHERE container = ? AND name = ?", (container, name)
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"blob {container}/{name} not found")
        return bytes(row[0])

    async def delete_blob(self, container: str, name: str) -> bool:
        """Delete the blob; False if it did not exist."""
        check_container(container)
        check_blob_name(name)
        return await self.db.write(
            lambda conn: (
                conn.execute("DELETE FROM blobs WHERE container = ? AND name = ?", (container, name)).rowcount > 0
            )
        )

    async def list_blobs(self, container: str, prefix: str = "") -> builtins.list[str]:
        """Names of the blobs in `container` starting with `prefix`, in name order ([] for an unknown container)."""
        check_container(container)
        check_prefix(prefix)
        where, args = _range("name", prefix)
        sql = f"SELECT name FROM blobs WHERE container = ? AND {where} ORDER BY name"
        rows: builtins.list[Any] = await self.db.read(lambda conn: conn.execute(sql, (container, *args)).fetchall())
        return [name for (name,) in rows]

    async def close(self) -> None:
        """Close the database (it reopens on next use)."""
        await self.db.close()

"""Idempotency keys for POST routes: a replay with the same body gets the first response back.

A request carrying `Idempotency-Key` is remembered by (scope, key) with the hash of its body. The first
request claims the key with a create-only write of a "pending" marker (`if_none_match=True`), so of two
concurrent requests exactly one runs; the other sees the marker (IdempotencyInProgress, answer 409 and let
the client retry) or, once saved, the winner's response. The same key with a different body is an
IdempotencyMismatch (422). Records expire after `ttl` seconds of the Clock; a pending marker whose request
died expires after `pending_ttl`, so a crashed request never blocks its key for long.

Typical use in a route (the lead's HTTP layer):

    stored = await idem.begin(scope, key, request_hash(body))
    if stored is not None:
        return stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"}
    try:
        status, body, headers = await handle()
    except BaseException:
        await idem.release(scope, key)
        raise
    await idem.save(scope, key, request_hash(body_bytes), status, body, headers)
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from aos_core.clock import SystemClock
from aos_core.errors import ConflictError, IdempotencyInProgress, IdempotencyMismatch
from aos_core.etag import retry_on_conflict
from aos_core.ports import JSON, Clock, StateStore, StoredResponse

PREFIX = "idempotency/"


def request_hash(body: bytes | str, *parts: str) -> str:
    """SHA-256 of the request body (and optional parts such as method and path) for comparing replays."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(body.encode("utf-8") if isinstance(body, str) else body)
    return digest.hexdigest()


def _storage_key(scope: str, key: str) -> str:
    # Client-chosen keys may hold any characters: store them by hash so every backend accepts the key.
    if not isinstance(key, str) or not key or len(key) > 255:
        raise ValueError("Idempotency-Key must be 1-255 characters")
    if not isinstance(scope, str) or not scope:
        raise ValueError("idempotency scope must be a non-empty str")
    scoped = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
    return f"{PREFIX}{scoped[:2]}/{scoped}"


class IdempotencyStore:
    """Idempotency records over any StateStore, expiring on the Clock."""

    def __init__(self, store: StateStore, *, clock: Clock | None = None, ttl: float = 24 * 3600.0,
                 pending_ttl: float = 120.0) -> None:
        if ttl <= 0 or pending_ttl <= 0:
            raise ValueError("ttl and pending_ttl must be > 0")
        self.store = store
        self.clock = clock or SystemClock()
        self.ttl = ttl
        self.pending_ttl = pending_ttl

    def _expired(self, record: dict[str, Any]) -> bool:
        return datetime.fromisoformat(record["expires_at"]) <= self.clock.now()

    def _record(self, key: str, request_hash: str, *, pending: bool, ttl: float, **extra: Any) -> dict[str, Any]:
        now = self.clock.now()
        return {"key": key, "hash": request_hash, "pending": pending, "created_at": now.isoformat(),
                "expires_at": (now + timedelta(seconds=ttl)).isoformat(), **extra}

    def _answer(self, key: str, request_hash: str, record: dict[str, Any]) -> StoredResponse:
        if record["hash"] != request_hash:
            raise IdempotencyMismatch(key)
        if record["pending"]:
            remaining = datetime.fromisoformat(record["expires_at"]) - self.clock.now()
            raise IdempotencyInProgress(key, max(1.0, remaining.total_seconds()))
        return StoredResponse(record["status"], record["body"], dict(record.get("headers") or {}),
                              record["created_at"])

    async def lookup(self, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """The saved response for a replay, or None if the key is new or expired.

        IdempotencyMismatch if the key came with a different body; IdempotencyInProgress while the first
        request with this key is still running.
        """
        doc = await self.store.get(_storage_key(scope, key))
        if doc is None or self._expired(doc.value):
            return None
        return self._answer(key, request_hash, doc.value)

    async def begin(self, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """Claim the key for this request (None: go ahead and handle it), or return the saved response.

        Raises like `lookup`. Safe under concurrency: of two requests racing for a new key, one claims it
        and the other gets IdempotencyInProgress (or the saved response if the first already finished).
        """
        storage_key = _storage_key(scope, key)
        async def attempt() -> StoredResponse | None:
            doc = await self.store.get(storage_key)
            if doc is not None and not self._expired(doc.value):
                return self._answer(key, request_hash, doc.value)
            marker = self._record(key, request_hash, pending=True, ttl=self.pending_ttl)
            if doc is None:
                await self.store.put(storage_key, marker, if_none_match=True)
            else:  # expired: replace exactly the record we saw
                await self.store.put(storage_key, marker, if_match=doc.etag)
            return None

        try:
            return await retry_on_conflict(attempt, key=storage_key, what="idempotency claim")
        except ConflictError:  # others keep claiming and dropping it: tell the client to come back
            raise IdempotencyInProgress(key, 1.0) from None

    async def save(self, scope: str, key: str, request_hash: str, status: int, body: JSON,
                   headers: dict[str, str] | None = None) -> StoredResponse:
        """Store the response for replays and return the response that now stands for the key.

        If another request with the same key and body saved first, that one stands and is returned (so both
        callers answer the same); a different body raises IdempotencyMismatch. Do not save 5xx answers:
        call `release` instead, so the client's retry runs again.
        """
        storage_key = _storage_key(scope, key)
        record = self._record(key, request_hash, pending=False, ttl=self.ttl, status=int(status), body=body,
                              headers=dict(headers or {}))
        async def attempt() -> StoredResponse | None:
            doc = await self.store.get(storage_key)
            if doc is None:
                await self.store.put(storage_key, record, if_none_match=True)
            elif doc.value["pending"] or self._expired(doc.value):
                if doc.value["hash"] != request_hash and not self._expired(doc.value):
                    raise IdempotencyMismatch(key)
                await self.store.put(storage_key, record, if_match=doc.etag)
            else:
                return self._answer(key, request_hash, doc.value)
            return StoredResponse(record["status"], body, record["headers"], record["created_at"])

        return await retry_on_conflict(attempt, key=storage_key, what="idempotency record")

    async def release(self, scope: str, key: str) -> bool:
        """Drop a pending claim (the request failed), so a retry with the same key runs again."""
        storage_key = _storage_key(scope, key)
        doc = await self.store.get(storage_key)
        if doc is None or not doc.value["pending"]:
            return False
        try:
            return await self.store.delete(storage_key, if_match=doc.etag)
        except ConflictError:
            return False

    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired records (the timer calls this); returns how many were deleted."""
        deleted, after = 0, None
        while deleted < limit:
            page = await self.store.list(PREFIX, start_after=after, limit=500)
            if not page:
                break
            for doc in page:
                if deleted >= limit:
                    break
                if self._expired(doc.value):
                    try:
                        deleted += await self.store.delete(doc.key, if_match=doc.etag)
                    except ConflictError:
                        pass  # renewed meanwhile
            after = page[-1].key
        return deleted

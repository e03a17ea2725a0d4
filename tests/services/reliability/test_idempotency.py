from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos_core.testing import ManualClock
from services.reliability import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    IdempotencyStore,
    request_hash,
)
from services.storage import InMemoryStateStore, SqliteStateStore

SCOPE = "POST /api/events"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    s = InMemoryStateStore() if request.param == "memory" else SqliteStateStore(tmp_path / "state.db")
    yield s
    await s.close()


async def test_replay_returns_first_response_and_different_body_is_rejected(store: object) -> None:
    clock = ManualClock()
    idem = IdempotencyStore(store, clock=clock)  # type: ignore[arg-type]
    body = request_hash(b'{"type": "order.created"}')
    assert await idem.begin(SCOPE, "key-1", body) is None
    saved = await idem.save(SCOPE, "key-1", body, 202, {"id": "evt-1"}, {"Location": "/api/events/evt-1"})
    replay = await idem.begin(SCOPE, "key-1", body)
    assert replay == saved
    assert (replay.status, replay.body, replay.headers) == (202, {"id": "evt-1"}, {"Location": "/api/events/evt-1"})
    assert await idem.lookup(SCOPE, "key-1", body) == saved
    with pytest.raises(IdempotencyMismatch):
        await idem.lookup(SCOPE, "key-1", request_hash(b'{"type": "other"}'))
    with pytest.raises(IdempotencyMismatch):
        await idem.begin(SCOPE, "key-1", request_hash(b'{"type": "other"}'))
    # Scopes are separate: the same key on another route is new.
    assert await idem.lookup("POST /api/agents", "key-1", body) is None


async def test_keys_expire_after_ttl(store: object) -> None:
    clock = ManualClock()
    idem = IdempotencyStore(store, clock=clock, ttl=60)  # type: ignore[arg-type]
    h = request_hash(b"a")
    await idem.begin(SCOPE, "k", h)
    await idem.save(SCOPE, "k", h, 200, "first")
    await clock.advance(59)
    assert (await idem.lookup(SCOPE, "k", h)).body == "first"  # type: ignore[union-attr]
    await clock.advance(1)
    assert await idem.lookup(SCOPE, "k", h) is None
    assert await idem.begin(SCOPE, "k", request_hash(b"b")) is None  # expired key may be reused
    assert await idem.purge_expired() == 0  # the fresh claim is not expired
    await clock.advance(3600)
    assert await idem.purge_expired() == 1


async def test_concurrent_requests_with_one_key_run_once(store: object) -> None:
    clock = ManualClock()
    idem = IdempotencyStore(store, clock=clock)  # type: ignore[arg-type]
    h = request_hash(b"same body")
    runs = 0

    async def request() -> tuple[int, object]:
        nonlocal runs
        try:
            stored = await idem.begin(SCOPE, "race", h)
        except IdempotencyInProgress:
            return 409, None
        if stored is not None:
            return stored.status, stored.body
        runs += 1
        final = await idem.save(SCOPE, "race", h, 201, {"run": runs})
        return final.status, final.body

    answers = await asyncio.gather(*(request() for _ in range(10)))
    assert runs == 1
    assert all(a in [(201, {"run": 1}), (409, None)] for a in answers)
    assert (201, {"run": 1}) in answers
    assert (await idem.lookup(SCOPE, "race", h)).body == {"run": 1}  # type: ignore[union-attr]


async def test_pending_claim_blocks_then_expires_or_is_released(store: object) -> None:
    clock = ManualClock()
    idem = IdempotencyStore(store, clock=clock, pending_ttl=30)  # type: ignore[arg-type]
    h = request_hash(b"x")
    assert await idem.begin(SCOPE, "k", h) is None
    with pytest.raises(IdempotencyInProgress) as info:
        await idem.begin(SCOPE, "k", h)
    assert info.value.retry_after == pytest.approx(30)
    await clock.advance(30)  # the first request died without saving
    assert await idem.begin(SCOPE, "k", h) is None
    assert await idem.release(SCOPE, "k")
    assert await idem.begin(SCOPE, "k", h) is None


async def test_second_save_keeps_the_first_response(store: object) -> None:
    idem = IdempotencyStore(store, clock=ManualClock())  # type: ignore[arg-type]
    h = request_hash(b"x")
    first = await idem.save(SCOPE, "k", h, 200, "first")
    assert await idem.save(SCOPE, "k", h, 200, "second") == first
    with pytest.raises(IdempotencyMismatch):
        await idem.save(SCOPE, "k", request_hash(b"y"), 200, "other")


async def test_bad_keys_are_refused(store: object) -> None:
    idem = IdempotencyStore(store)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await idem.lookup(SCOPE, "", "h")
    with pytest.raises(ValueError):
        await idem.lookup(SCOPE, "x" * 256, "h")
    # any characters are fine: the key is stored by hash
    assert await idem.lookup(SCOPE, "../../ weird/ключ", "h") is None

"""One contract for every AuditLog, run against each: SqliteAuditLog (a file) and TableAuditLog (Azurite).

What is specific to a backend stays in its own file: SQL tampering and the append-only triggers
(test_audit.py), edits made through the Table API (tests/services/azure/test_table_audit.py).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aos_core.ports import AuditLog
from aos_core.testing import ManualClock
from services.governance.chain import InvalidAuditEntry

KINDS = ["sqlite", "table"]
Opener = Callable[..., Any]  # (hmac_key=...) -> a new AuditLog on the same storage


@pytest.fixture(params=KINDS)
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens AuditLogs on one storage: a second one is another worker process writing to the same log."""
    if request.param == "sqlite":
        from services.governance.audit import SqliteAuditLog

        path = tmp_path / "audit.db"
        return lambda hmac_key=None: SqliteAuditLog(path, clock=ManualClock(), hmac_key=hmac_key)
    from services.governance.table_audit import TableAuditLog
    from services.storage.connections import resolve_storage_connection

    connection = resolve_storage_connection("S", {"S": request.getfixturevalue("azurite").connection_string})
    table = f"audit{uuid.uuid4().hex[:12]}"
    return lambda hmac_key=None: TableAuditLog(connection, table=table, clock=ManualClock(), hmac_key=hmac_key)


@pytest.fixture
async def log(open_log: Opener) -> AsyncIterator[AuditLog]:
    audit = open_log()
    yield audit
    await audit.close()


async def test_append_links_entries_and_implements_the_port(log: AuditLog) -> None:
    assert isinstance(log, AuditLog)
    first = await log.append("api:alice", "agent.registered", "agent/ceo", {"type": "ceo"})
    second = await log.append("kernel", "event.accepted", "event/1")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    assert first.payload == {"type": "ceo"} and second.payload is None
    result = await log.verify()
    assert (result.ok, result.count) == (True, 2)


async def test_entries_page_and_filter(log: AuditLog) -> None:
    for i in range(5):
        await log.append("ceo" if i % 2 else "cfo", "approve", f"budget/{i}", {"amount": i})
    await log.append("policy", "policy.denied", "agent/cfo", {"rule": "spend-1"})
    assert [e.seq for e in await log.entries(after=2, limit=2)] == [3, 4]
    assert [e.seq for e in await log.entries(actor="ceo")] == [2, 4]
    assert [(e.seq, e.actor, e.subject) for e in await log.entries(action="policy.denied")] == \
        [(6, "policy", "agent/cfo")]
    assert [e.subject for e in await log.entries(action="approve", subject="budget/4")] == ["budget/4"]
    assert await log.entries(actor="nobody") == []
    with pytest.raises(ValueError):
        await log.entries(limit=0)
    with pytest.raises(ValueError):
        await log.entries(after=-1)


@pytest.mark.parametrize("actor,payload", [("", None), ("a" * 501, None), ("ceo", {"bad": float("inf")}),
                                           ("ceo", {"bad": {1, 2}}), ("ceo", {"bad": float("nan")})])
async def test_bad_input_writes_nothing(log: AuditLog, actor: str, payload: Any) -> None:
    with pytest.raises(InvalidAuditEntry):
        await log.append(actor, "approve", "x", payload)
    assert await log.entries() == []
    assert (await log.verify()).count == 0


async def test_concurrent_appenders_on_two_instances_keep_one_chain(open_log: Opener) -> None:
    a, b = open_log(hmac_key="k"), open_log(hmac_key="k")  # two workers appending to one log
    try:
        written = await asyncio.gather(*(log.append(f"w{i % 2}", "event.accepted", f"event/{i}", {"i": i})
                                         for i, log in enumerate([a, b] * 10)))
        assert sorted(e.seq for e in written) == list(range(1, 21))
        entries = await b.entries(limit=1000)
        assert [e.seq for e in entries] == list(range(1, 21))
        assert all(y.prev_hash == x.hash for x, y in itertools.pairwise(entries))
        result = await a.verify()
        assert (result.ok, result.count) == (True, 20)
    finally:
        await a.close()
        await b.close()


async def test_appends_continue_the_chain_after_reopening_and_need_the_key_to_verify(open_log: Opener) -> None:
    for round_ in range(2):
        audit = open_log(hmac_key="from-key-vault")
        for i in range(3):
            await audit.append("kernel", "event.accepted", f"event/{round_}-{i}", {"i": i})
        await audit.close()
    keyed, unkeyed = open_log(hmac_key="from-key-vault"), open_log()
    try:
        assert [e.seq for e in await keyed.entries()] == list(range(1, 7))
        assert (await keyed.verify()).ok
        wrong = await unkeyed.verify()  # hashed under a key: without it nothing checks out
        assert not wrong.ok and wrong.first_bad_seq == 1
    finally:
        await keyed.close()
        await unkeyed.close()


async def test_append_many_links_a_batch_in_order_and_a_bad_item_writes_none(log: AuditLog) -> None:
    first = await log.append("kernel", "event.accepted", "event/0")
    batch, single = await asyncio.gather(
        log.append_many([("kernel", "event.accepted", f"event/{i}", {"n": i}) for i in range(1, 4)]),
        log.append("api:bob", "agent.registered", "agent/x"))  # appended meanwhile: joins the same chain
    assert [e.subject for e in batch] == ["event/1", "event/2", "event/3"]
    assert [e.payload for e in batch] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert first.seq < batch[0].seq < batch[1].seq < batch[2].seq  # in order (another append may come between)
    assert single.seq not in {e.seq for e in batch}
    with pytest.raises(InvalidAuditEntry):
        await log.append_many([("kernel", "event.accepted", "event/5", None), ("", "event.accepted", "event/6", None)])
    assert await log.entries(subject="event/5") == []
    assert await log.append_many([]) == []
    result = await log.verify()
    assert (result.ok, result.count) == (True, 5)

"""SqliteAuditLog: append-only triggers and tamper detection on the real file (the AuditLog contract every
backend meets is test_audit_log_contract.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aos_core.testing import ManualClock
from services.governance.audit import SqliteAuditLog
from services.governance.chain import entry_hash, payload_hash
from tests.support.loops import run_on_loops


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteAuditLog]:
    audit = SqliteAuditLog(tmp_path / "audit.db", clock=ManualClock())
    yield audit
    await audit.close()


async def fill(audit: SqliteAuditLog, n: int) -> None:
    for i in range(n):
        await audit.append("kernel", "event.accepted", f"event/e{i}", {"i": i})


def tamper(path: Path, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """What someone with write access to the file could do: drop the guard triggers and edit rows."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for statement in statements:
        sql, params = statement if isinstance(statement, tuple) else (statement, ())
        conn.execute(sql, params)
    conn.commit()
    conn.close()


async def reverify(path: Path, key: bytes | None = None) -> tuple[bool, int | None, str | None]:
    audit = SqliteAuditLog(path, hmac_key=key)
    try:
        result = await audit.verify()
    finally:
        await audit.close()
    return result.ok, result.first_bad_seq, result.reason


async def test_rows_cannot_be_updated_or_deleted_through_sql(log: SqliteAuditLog, tmp_path: Path) -> None:
    await fill(log, 1)
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_entries SET actor = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_entries")
    conn.close()


@pytest.mark.parametrize(("column", "value"), [
    ("time", "2030-01-01T00:00:00.000000+00:00"),
    ("actor", "mallory"),
    ("action", "event.rejected"),
    ("subject", "event/forged"),
    ("payload", json.dumps({"i": 999})),
    ("payload_hash", payload_hash({"i": 999})),
    ("prev_hash", "a" * 64),
    ("hash", "b" * 64),
    ("time", "not a time"),
])
async def test_changing_a_field_is_detected_and_named(log: SqliteAuditLog, tmp_path: Path, column: str,
                                                      value: str) -> None:
    await fill(log, 6)
    await log.close()
    tamper(tmp_path / "audit.db", (f"UPDATE audit_entries SET {column} = ? WHERE seq = 4", (value,)))
    ok, bad, reason = await reverify(tmp_path / "audit.db")
    assert (ok, bad) == (False, 4), reason
    assert "entry 4" in (reason or "")


async def test_changing_seq_deleting_inserting_and_reordering(tmp_path: Path) -> None:
    cases: dict[str, Callable[[Path], None]] = {
        "delete middle": lambda p: tamper(p, "DELETE FROM audit_entries WHERE seq = 3"),
        "delete last": lambda p: tamper(p, "DELETE FROM audit_entries WHERE seq = 6"),
        "renumber": lambda p: tamper(p, "UPDATE audit_entries SET seq = 60 WHERE seq = 3"),
        # swap two rows' contents, keeping seq numbers: prev_hash links break at 3
        "reorder": lambda p: tamper(
            p, "UPDATE audit_entries SET seq = -3 WHERE seq = 3", "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
            "UPDATE audit_entries SET seq = 4 WHERE seq = -3"),
        "insert at end": lambda p: tamper(p, (
            "INSERT INTO audit_entries SELECT 7, time, actor, action, subject, payload, payload_hash, hash, "
            "hash FROM audit_entries WHERE seq = 6", ())),
    }
    expected = {"delete middle": 3, "delete last": 6, "renumber": 3, "reorder": 3, "insert at end": 7}
    for name, attack in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.db"
        audit = SqliteAuditLog(path, clock=ManualClock())
        await fill(audit, 6)
        await audit.close()
        attack(path)
        ok, bad, reason = await reverify(path)
        assert (ok, bad) == (False, expected[name]), f"{name}: {reason}"


async def test_insertion_in_the_middle_with_a_recomputed_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    key = b"from-key-vault"
    audit = SqliteAuditLog(path, clock=ManualClock(), hmac_key=key)
    await fill(audit, 5)
    entries = await audit.entries()
    await audit.close()
    two = entries[1]
    # A forger without the key links a new entry 3 to entry 2 and shifts 3..5 up by one.
    forged_hash = entry_hash(3, two.time, "mallory", "decision.taken", "x", payload_hash(None), two.hash)
    tamper(path, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 3",
           "UPDATE audit_entries SET seq = seq - 99 WHERE seq >= 100",
           ("INSERT INTO audit_entries VALUES (3, ?, 'mallory', 'decision.taken', 'x', 'null', ?, ?, ?)",
            (two.time.isoformat(), payload_hash(None), two.hash, forged_hash)))
    assert (await reverify(path, key))[:2] == (False, 3)  # the keyed hash names the forged entry itself
    assert (await reverify(path))[:2] == (False, 1)  # and without the key nothing verifies


def test_appenders_on_several_event_loops_at_once_all_land_in_one_chain(tmp_path: Path) -> None:
    # One log used from several loops (threads) at the same moment: each loop's group is written on its own
    # loop, none is dropped or answered on another loop, and the chain stays one line.
    log = SqliteAuditLog(tmp_path / "audit.db")

    async def appender(n: int) -> list[int]:
        entries = await asyncio.gather(*(log.append(f"loop{n}", "event.accepted", f"event/{n}-{i}")
                                         for i in range(100)),
                                       log.append_many([(f"loop{n}", "note", f"batch/{n}-{i}", None)
                                                        for i in range(20)]))
        return [e.seq for e in entries[:-1]] + [e.seq for e in entries[-1]]  # type: ignore[union-attr]

    written = run_on_loops(4, appender)
    assert sorted(seq for seqs in written.values() for seq in seqs) == list(range(1, 4 * 120 + 1))
    result = asyncio.run(log.verify())
    assert (result.ok, result.count) == (True, 480)
    asyncio.run(log.close())

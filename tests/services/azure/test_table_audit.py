"""TableAuditLog on Azurite: what is specific to Table Storage (the contract every AuditLog meets is
tests/services/governance/test_audit_log_contract.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from aos_core.testing import ManualClock
from services.governance.chain import InvalidAuditEntry
from services.governance.table_audit import TableAuditLog
from services.storage.connections import resolve_storage_connection
from tests.azurite import Azurite


@pytest.fixture
async def log(azurite: Azurite) -> AsyncIterator[TableAuditLog]:
    connection = resolve_storage_connection("S", {"S": azurite.connection_string})
    audit = TableAuditLog(connection, table=f"audit{uuid.uuid4().hex[:12]}", clock=ManualClock(), hmac_key="k")
    yield audit
    await audit.close()


async def test_head_names_the_last_entry(log: TableAuditLog) -> None:
    assert await log.head() is None
    entries = [await log.append("ceo", "approve", f"budget/{i}", {"amount": i}) for i in range(3)]
    assert await log.head() == (3, entries[-1].hash)


async def test_tampering_and_a_cut_tail_are_named(log: TableAuditLog) -> None:
    for i in range(4):
        await log.append("ceo", "approve", "budget", {"amount": i})
    client = await log._table.client()
    row = await client.get_entity(log.partition, "000000000002")
    row["payload"] = '{"amount":1000000}'
    await client.update_entity(row)
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 2 and "payload" in (result.reason or "")

    row["payload"] = '{"amount":1}'
    await client.update_entity(row)
    assert (await log.verify()).ok
    await client.delete_entity(log.partition, "000000000004")
    cut = await log.verify()
    assert not cut.ok and cut.first_bad_seq == 4 and "cut" in (cut.reason or "")


async def test_a_payload_larger_than_a_row_writes_nothing(log: TableAuditLog) -> None:
    with pytest.raises(InvalidAuditEntry, match="Table Storage"):  # a row holds 64 KiB of text at most
        await log.append("ceo", "approve", "x", "y" * 40_000)
    assert await log.head() is None and await log.entries() == []


async def test_the_config_selects_the_table_audit_log_on_the_storage_connection(
        azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    from aos_core.config import AOSConfig
    from services.governance.factory import open_audit_log

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    config = AOSConfig(governance={"audit_backend": "table", "audit_table": f"audit{uuid.uuid4().hex[:12]}"})
    audit = await open_audit_log(config, clock=ManualClock())
    try:
        assert isinstance(audit, TableAuditLog)
        await audit.append("ops", "agent.registered", "agent/a1", {"type": "tally"})
        assert (await audit.verify()).ok
    finally:
        await audit.close()
    monkeypatch.delenv("AzureWebJobsStorage")
    with pytest.raises(Exception, match="AzureWebJobsStorage"):
        await open_audit_log(config)

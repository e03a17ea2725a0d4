"""The pure chain functions, without storage: what every AuditLog backend relies on."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from aos_core.ports import AuditEntry
from services.governance.chain import (
    GENESIS_HASH,
    ChainVerifier,
    InvalidAuditEntry,
    canonical_json,
    canonical_time,
    entry_hash,
    next_entry,
    payload_hash,
    verify_entries,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chain(n: int, key: bytes | None = None) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i in range(n):
        prev = out[-1] if out else None
        out.append(next_entry(prev, T0 + timedelta(seconds=i), "kernel", "event.accepted", f"event/e{i}",
                              {"i": i, "amount": 1.5}, key))
    return out


def test_canonical_json_is_stable_and_strict() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})
    with pytest.raises(InvalidAuditEntry):
        canonical_json(float("nan"))
    with pytest.raises(InvalidAuditEntry):
        canonical_json({"x": object()})


def test_a_fresh_chain_verifies_and_links() -> None:
    entries = chain(5)
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    result = verify_entries(entries, head=(5, entries[-1].hash))
    assert (result.ok, result.count, result.first_bad_seq) == (True, 5, None)
    assert verify_entries([]).ok


def test_hmac_key_changes_hashes_and_is_required_to_verify() -> None:
    keyed = chain(3, key=b"secret")
    assert keyed[0].hash != chain(3)[0].hash
    assert verify_entries(keyed, key=b"secret").ok
    bad = verify_entries(keyed)
    assert not bad.ok and bad.first_bad_seq == 1


@pytest.mark.parametrize(("field", "value"), [
    ("time", T0 + timedelta(days=1)),
    ("actor", "mallory"),
    ("action", "event.rejected"),
    ("subject", "event/other"),
    ("payload", {"i": 2, "amount": 1000}),
    ("payload_hash", payload_hash({"forged": True})),
    ("prev_hash", "f" * 64),
    ("hash", "0" * 64),
])
def test_changing_any_field_is_detected_at_that_entry(field: str, value: object) -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], **{field: value})
    result = verify_entries(entries)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "entry 3" in (result.reason or "")


def test_deletion_insertion_reordering_and_truncation() -> None:
    entries = chain(6)
    head = (6, entries[-1].hash)
    deleted = verify_entries(entries[:2] + entries[3:], head=head)
    assert (deleted.ok, deleted.first_bad_seq) == (False, 3)
    assert "missing" in (deleted.reason or "")

    swapped = [*entries[:2], entries[3], entries[2], *entries[4:]]
    assert verify_entries(swapped, head=head).first_bad_seq == 3

    forged = next_entry(entries[1], T0, "mallory", "decision.taken", "x", None)  # correctly linked to entry 2
    renumbered = [dataclasses.replace(e, seq=e.seq + 1) for e in entries[2:]]
    inserted = verify_entries([*entries[:2], forged, *renumbered], head=head)
    assert (inserted.ok, inserted.first_bad_seq) == (False, 4)  # the link the insertion broke

    truncated = verify_entries(entries[:4], head=head)
    assert (truncated.ok, truncated.first_bad_seq) == (False, 5)
    extra = next_entry(entries[-1], T0, "mallory", "x", "y")
    assert verify_entries([*entries, extra], head=head).first_bad_seq == 7


def test_with_a_key_an_inserted_entry_is_named_itself() -> None:
    entries = chain(4, key=b"k")
    forged = next_entry(entries[1], T0, "mallory", "x", "y", None, key=b"guess")
    result = verify_entries([*entries[:2], forged], key=b"k")
    assert result.first_bad_seq == 3


def test_verifier_pages_and_hash_function_is_deterministic() -> None:
    entries = chain(10)
    verifier = ChainVerifier()
    for page in (entries[:4], entries[4:]):
        for entry in page:
            assert verifier.feed(entry)
    assert verifier.result().count == 10
    e = entries[0]
    assert entry_hash(e.seq, e.time, e.actor, e.action, e.subject, e.payload_hash, e.prev_hash) == e.hash
    when = canonical_time(e.time)
    assert entry_hash(e.seq, when, e.actor, e.action, e.subject, e.payload_hash, e.prev_hash) == e.hash


def test_bad_names_are_refused() -> None:
    for actor, action, subject in [("", "a", "s"), ("a", "", "s"), ("a", "b", "x" * 501)]:
        with pytest.raises(InvalidAuditEntry):
            next_entry(None, T0, actor, action, subject)

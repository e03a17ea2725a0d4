"""The pure chain functions, without storage: what every AuditLog backend relies on."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aos_core.ports import AuditEntry
from services.governance.chain import (
    GENESIS_HASH,
    MAX_NAME,
    ChainVerifier,
    InvalidAuditEntry,
    canonical_json,
    canonical_time,
    entry_hash,
    next_entry,
    payload_hash,
    prepare_entry,
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


# --- the documented entry format, pinned -------------------------------------------------------------------

# The bytes the docstring of services/governance/chain.py describes for one entry, written out by hand: an
# implementation in another language must hash exactly these, so renaming or reformatting a field breaks it.
PINNED_FIELDS = ('{"action":"event.accepted","actor":"kernel","payload_hash":"%s","prev_hash":"%s","seq":1,'
                 '"subject":"event/e1","time":"2026-01-01T00:00:00.000000+00:00"}')


def pinned_entry(key: bytes | None = None) -> AuditEntry:
    return next_entry(None, T0, "kernel", "event.accepted", "event/e1", {"who": "é", "amount": 1.5}, key)


def test_an_entry_hashes_the_documented_canonical_fields() -> None:
    entry = pinned_entry()
    payload = '{"amount":1.5,"who":"é"}'.encode()
    assert entry.payload_hash == hashlib.sha256(payload).hexdigest()
    assert entry.payload_hash == "23e67f7ae8c1ffd09d38d8ae498fea94d80ce92f2558ee4823b0e9fe20d86069"
    fields = (PINNED_FIELDS % (entry.payload_hash, GENESIS_HASH)).encode()
    assert entry.hash == hashlib.sha256(fields).hexdigest()
    assert entry.hash == "eb380172191f5bdc2d3beaa3932e9bac858711b927ee1bb66a80b3d973007b98"
    keyed = pinned_entry(b"k")
    assert keyed.hash == hmac.new(b"k", fields, hashlib.sha256).hexdigest()
    assert keyed.hash == "fc5398494da65bbc317482de2c8aa47fea91546a17bf446825cc70a4db56a767"


def test_an_entry_keeps_its_payload_as_it_will_read_back() -> None:
    entry = next_entry(None, T0, "kernel", "x", "y", {"b": [1, 2], "a": "é"})
    assert entry.payload == {"a": "é", "b": [1, 2]}
    second = next_entry(entry, T0, "kernel", "x", "y", {"n": 2})
    assert (second.seq, second.prev_hash, second.payload) == (2, entry.hash, {"n": 2})
    prepared = prepare_entry(T0, "kernel", "x", "y", {"b": 1, "a": "é"})
    assert prepared.payload_json == '{"a":"é","b":1}'


def test_times_are_hashed_in_utc_whatever_their_offset_or_the_servers_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # a server whose local zone is not UTC
    time.tzset()
    try:
        plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
        assert canonical_time(plus_two) == "2026-01-01T00:00:00.000000+00:00"
        assert canonical_time(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000+00:00"  # naive: UTC
        moved = next_entry(None, plus_two, "kernel", "event.accepted", "event/e1", {"who": "é", "amount": 1.5})
        assert moved.hash == pinned_entry().hash and moved.time == T0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_names_up_to_the_limit_are_accepted_and_the_error_names_the_field() -> None:
    assert next_entry(None, T0, "a" * MAX_NAME, "b", "c").actor == "a" * MAX_NAME
    for fields, name in [(("a" * (MAX_NAME + 1), "b", "c"), "actor"), (("a", "", "c"), "action"),
                         (("a", "b", None), "subject")]:
        with pytest.raises(InvalidAuditEntry, match=rf"^audit {name} must be a non-empty str of at most 500 "):
            next_entry(None, T0, *fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidAuditEntry, match=r"^audit payload is not plain JSON: "):
        next_entry(None, T0, "a", "b", "c", {"x": {1, 2}})  # type: ignore[dict-item]


# --- what verification reports -------------------------------------------------------------------------------


def test_with_the_key_tampering_that_relinks_every_later_hash_is_still_caught() -> None:
    entries = chain(4, key=b"secret")
    # Mallory rewrites entry 2 and, without the key, recomputes every hash after it as a plain SHA-256.
    forged = [*entries[:1]]
    for entry in entries[1:]:
        payload = {"i": 99} if entry.seq == 2 else entry.payload
        forged.append(next_entry(forged[-1], entry.time, entry.actor, entry.action, entry.subject, payload))
    result = verify_entries(forged, key=b"secret", head=(4, forged[-1].hash))
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.reason == "entry 2 hash does not match its fields (changed)"
    changed = dataclasses.replace(entries[2], actor="mallory")
    assert verify_entries([*entries[:2], changed, entries[3]], key=b"secret").first_bad_seq == 3
    assert verify_entries(entries, key=b"other").first_bad_seq == 1


def test_a_replayed_entry_is_reported_where_the_next_one_was_expected() -> None:
    entries = chain(3)
    verifier = ChainVerifier()
    assert verifier.feed(entries[0]) and verifier.feed(entries[1])
    assert verifier.feed(entries[1]) is False  # sent again
    assert verifier.feed(entries[2]) is False  # nothing more is checked once broken
    result = verifier.result()
    assert (result.ok, result.count, result.first_bad_seq) == (False, 3, 3)
    assert result.reason == "entry 2 appears again or out of order where 3 was expected"


def test_each_break_is_reported_with_its_place_and_reason() -> None:
    entries = chain(4)
    head = (4, entries[-1].hash)

    def reason(feed: list[AuditEntry], head: tuple[int, str] | None = head) -> tuple[int | None, str | None]:
        result = verify_entries(feed, head=head)
        assert result.ok is False
        return result.first_bad_seq, result.reason

    assert reason([entries[0], entries[2], entries[3]]) == (2, "entry 2 is missing (next entry found is 3)")
    relinked = dataclasses.replace(entries[2], prev_hash=entries[0].hash)
    assert reason([*entries[:2], relinked, entries[3]]) == (
        3, "entry 3 does not link to entry 2 (prev_hash differs: an entry was inserted, removed or reordered)")
    assert reason(entries[:2]) == (3, "entries 3..4 are missing (log was cut)")
    assert reason(entries, head=(3, entries[2].hash)) == (4, "entry 4 was added outside the log (after its "
                                                             "recorded head)")
    assert reason(entries, head=(4, "f" * 64)) == (4, "entry 4 does not match the log's recorded head")
    repaid = dataclasses.replace(entries[1], payload={"i": 1, "amount": 2})
    assert reason([entries[0], repaid]) == (2, "entry 2 payload does not match its payload_hash")
    nan = dataclasses.replace(entries[1], payload=float("nan"))
    assert reason([entries[0], nan]) == (2, "entry 2 payload is not plain JSON")
    timeless = dataclasses.replace(entries[1], time=12)
    assert reason([entries[0], timeless]) == (2, "entry 2 has fields that cannot be hashed")
    ok = verify_entries(entries, head=head)
    assert (ok.ok, ok.count, ok.first_bad_seq, ok.reason) == (True, 4, None, None)


def test_a_forged_entry_with_an_empty_payload_hash_is_not_taken_as_intact() -> None:
    entries = chain(2)
    digest = ""
    forged = dataclasses.replace(entries[1], payload=float("nan"), payload_hash=digest,
                                 hash=entry_hash(2, entries[1].time, "kernel", "event.accepted", "event/e1", digest,
                                                 entries[0].hash))
    assert verify_entries([entries[0], forged]).first_bad_seq == 2


def test_an_entry_that_cannot_be_read_back_breaks_the_chain_there() -> None:
    entries = chain(2)
    verifier = ChainVerifier(start_seq=2, prev_hash=entries[0].hash)  # a page that starts after entry 1
    assert verifier.feed(entries[1])
    verifier.fail_next("is not valid JSON")
    result = verifier.result()
    assert (result.ok, result.count, result.first_bad_seq, result.reason) == (False, 2, 3, "entry 3 is not valid JSON")

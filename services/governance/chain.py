"""The audit hash chain as pure functions: every AuditLog implementation (SQLite, Table Storage) uses these.

An entry's `payload_hash` is SHA-256 over the canonical JSON of its payload; its `hash` is SHA-256 (or
HMAC-SHA256 with a key from the SecretStore) over the canonical JSON of
`{"seq", "time", "actor", "action", "subject", "payload_hash", "prev_hash"}`; `prev_hash` is the previous
entry's `hash` (GENESIS_HASH for seq 1). Canonical JSON: keys sorted, no whitespace, UTF-8, no NaN; times
are UTC ISO 8601 with microseconds. Nothing here touches storage, so a backend reads entries its own way
and feeds them, in seq order, to `ChainVerifier` (page by page) or `verify_entries`.

What verification detects: a changed field (the entry's hash no longer matches; a changed payload no
longer matches its payload_hash), a deleted entry (a gap in seq), a reordered or inserted entry (seq or
prev_hash out of line) and a cut-off or extended tail (compared with the head the log records separately).
Without an HMAC key, someone able to rewrite storage could recompute every later hash; the key (kept out
of storage) is what makes forging a consistent chain impossible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aos_core import strict_json
from aos_core.errors import AOSError
from aos_core.ports import JSON, AuditEntry, AuditVerification

GENESIS_HASH = "0" * 64
MAX_NAME = 500  # characters in actor, action and subject
MAX_PAGE = 1000  # entries in one page of AuditLog.entries


class InvalidAuditEntry(AOSError, ValueError):
    """An entry cannot be recorded: an empty or too long name, or a payload that is not plain JSON."""


_CANONICAL = strict_json.encoder(sort_keys=True, ensure_ascii=False)


def canonical_json(value: JSON) -> bytes:
    """The one byte form of a JSON value that hashes agree on: sorted keys, no spaces, UTF-8."""
    try:
        return _CANONICAL(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidAuditEntry(f"audit payload is not plain JSON: {exc}") from None


def canonical_time(value: datetime) -> str:
    """UTC ISO 8601 with microseconds; a naive time is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def payload_hash(payload: JSON) -> str:
    """Hex SHA-256 of the payload's canonical JSON (None hashes as `null`)."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def entry_hash(seq: int, time: datetime | str, actor: str, action: str, subject: str, payload_digest: str,
               prev_hash: str, key: bytes | None = None) -> str:
    """Hex SHA-256 (HMAC-SHA256 when `key` is given) over the entry's canonical fields."""
    fields = {
        "seq": seq,
        "time": time if isinstance(time, str) else canonical_time(time),
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload_hash": payload_digest,
        "prev_hash": prev_hash,
    }
    data = canonical_json(fields)
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def check_page(after: object, limit: object) -> None:
    """The paging arguments every AuditLog.entries accepts: `after` >= 0 and `limit` from 1 to MAX_PAGE."""
    if not isinstance(after, int) or after < 0:
        raise ValueError(f"after must be an int >= 0, got {after!r}")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an int from 1 to {MAX_PAGE}, got {limit!r}")


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InvalidAuditEntry(f"audit {what} must be a non-empty str of at most {MAX_NAME} characters")
    return value


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry validated and hashed except for its place in the chain (seq and previous hash), so the part of
    an append that must run under the chain's lock is one small hash."""

    time: datetime
    actor: str
    action: str
    subject: str
    payload: JSON  # as it will read back (a JSON round trip), so verification sees the same value
    payload_json: str  # canonical JSON, as stored
    payload_hash: str
    time_text: str  # canonical time, as hashed

    def link(self, seq: int, prev_hash: str, key: bytes | None = None) -> AuditEntry:
        return AuditEntry(seq=seq, time=self.time, actor=self.actor, action=self.action, subject=self.subject,
                          payload=self.payload, payload_hash=self.payload_hash, prev_hash=prev_hash,
                          hash=entry_hash(seq, self.time_text, self.actor, self.action, self.subject,
                                          self.payload_hash, prev_hash, key))


def prepare_entry(time: datetime, actor: str, action: str, subject: str, payload: JSON) -> PreparedEntry:
    """Validate names and payload (InvalidAuditEntry) and hash the payload, before anything is written."""
    _check_name(actor, "actor")
    _check_name(action, "action")
    _check_name(subject, "subject")
    data = canonical_json(payload)
    time_text = canonical_time(time)
    return PreparedEntry(time=datetime.fromisoformat(time_text), actor=actor, action=action,
                         subject=subject, payload=json.loads(data), payload_json=data.decode("utf-8"),
                         payload_hash=hashlib.sha256(data).hexdigest(), time_text=time_text)


def make_entry(seq: int, time: datetime, actor: str, action: str, subject: str, payload: JSON, prev_hash: str,
               key: bytes | None = None) -> AuditEntry:
    """A new entry, hashed. Validates names and payload (InvalidAuditEntry) before anything is written."""
    return prepare_entry(time, actor, action, subject, payload).link(seq, prev_hash, key)


def next_entry(previous: AuditEntry | None, time: datetime, actor: str, action: str, subject: str,
               payload: JSON = None, key: bytes | None = None) -> AuditEntry:
    """The entry that follows `previous` (or the first entry of a new chain)."""
    if previous is None:
        return make_entry(1, time, actor, action, subject, payload, GENESIS_HASH, key)
    return make_entry(previous.seq + 1, time, actor, action, subject, payload, previous.hash, key)


class ChainVerifier:
    """Checks entries fed in seq order; stops at the first bad one and remembers where and why."""

    def __init__(self, key: bytes | None = None, *, start_seq: int = 1, prev_hash: str = GENESIS_HASH) -> None:
        self.key = key
        self.count = 0
        self.last_seq = start_seq - 1
        self.last_hash = prev_hash
        self.first_bad_seq: int | None = None
        self.reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None

    def _fail(self, seq: int, reason: str) -> bool:
        self.first_bad_seq, self.reason = seq, reason
        return False

    def fail_next(self, reason: str) -> None:
        """Record that the next entry could not even be read back (a backend's parse error)."""
        self.count += 1
        self._fail(self.last_seq + 1, f"entry {self.last_seq + 1} {reason}")

    def feed(self, entry: AuditEntry) -> bool:
        """Check the next entry; False (and nothing more is checked) once the chain is broken."""
        if not self.ok:
            return False
        self.count += 1
        expected = self.last_seq + 1
        if entry.seq > expected:
            return self._fail(expected, f"entry {expected} is missing (next entry found is {entry.seq})")
        if entry.seq < expected:
            return self._fail(expected, f"entry {entry.seq} appears again or out of order where {expected} "
                                        "was expected")
        if entry.prev_hash != self.last_hash:
            return self._fail(expected, f"entry {expected} does not link to entry {expected - 1} (prev_hash differs:"
                                        " an entry was inserted, removed or reordered)")
        try:
            digest = payload_hash(entry.payload)
        except InvalidAuditEntry:
            return self._fail(expected, f"entry {expected} payload is not plain JSON")
        if digest != entry.payload_hash:
            return self._fail(expected, f"entry {expected} payload does not match its payload_hash")
        try:
            recomputed = entry_hash(entry.seq, entry.time, entry.actor, entry.action, entry.subject,
                                    entry.payload_hash, entry.prev_hash, self.key)
        except (InvalidAuditEntry, AttributeError, TypeError, ValueError):
            return self._fail(expected, f"entry {expected} has fields that cannot be hashed")
        if not hmac.compare_digest(recomputed, entry.hash):
            return self._fail(expected, f"entry {expected} hash does not match its fields (changed)")
        self.last_seq, self.last_hash = entry.seq, entry.hash
        return True

    def result(self, head: tuple[int, str] | None = None) -> AuditVerification:
        """The verdict; `head` is the (seq, hash) the log recorded for its last entry, to catch a cut tail."""
        if self.ok and head is not None:
            head_seq, head_hash = head
            if self.last_seq < head_seq:
                self._fail(self.last_seq + 1, f"entries {self.last_seq + 1}..{head_seq} are missing (log was cut)")
            elif self.last_seq > head_seq:
                self._fail(head_seq + 1, f"entry {head_seq + 1} was added outside the log (after its recorded head)")
            elif self.last_hash != head_hash:
                self._fail(head_seq, f"entry {head_seq} does not match the log's recorded head")
        return AuditVerification(ok=self.ok, count=self.count, first_bad_seq=self.first_bad_seq, reason=self.reason)


def verify_entries(entries: Iterable[AuditEntry], key: bytes | None = None,
                   head: tuple[int, str] | None = None) -> AuditVerification:
    """Verify a whole chain given in seq order (see ChainVerifier for paging through a large one)."""
    verifier = ChainVerifier(key)
    for entry in entries:
        if not verifier.feed(entry):
            break
    return verifier.result(head)

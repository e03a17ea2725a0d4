"""What an event costs on Azure Storage, counted from Azurite's debug log with `aos serve` on the Azure backend.

Storage bills per request and each one is a round trip, so these ceilings are behaviour users pay for: a direct
message to a live agent never lists a container, writes its context once and copies no history (nothing to
delete: a snapshot, and the delete of an old one, come every 50 or so events, more than this test sends), and
`?wait` on the instance that applies the event adds no request at all (the waiter is woken in process).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.azurite_requests import measure_messages

EVENTS = 10
# The record, the hand-over, the context and the result (one write each), the agent's result checked before it
# runs and the registry generation read: 6 (the addressed agent's type is read once per registry generation, not
# per message). Lower it as those go; never raise it.
CEILING = 6


def test_a_message_costs_at_most_the_ceiling_and_wait_adds_no_polling(tmp_path: Path) -> None:
    # A machine that starves the host of CPU for seconds makes it read events again after the stall (which is
    # not what an event costs), so a second measurement on a fresh host is taken before calling it a regression.
    for attempt in range(2):
        found = measure_messages(tmp_path / str(attempt), EVENTS)
        plain, waited = found["requests_per_message"], found["requests_per_message_wait"]
        if plain.total <= CEILING * EVENTS and waited.total <= CEILING * EVENTS + 3:
            break
    assert plain.total <= CEILING * EVENTS, plain
    assert not [op for op in plain.operations if "List" in op or "Delete" in op], plain
    # A waiter reads storage only when no result was posted here within half a second: on a machine slowed that
    # much, once at most in ten (polling as before costs two listings and more than five reads per event).
    assert waited.total <= CEILING * EVENTS + 3, waited
    assert sum(n for op, n in waited.operations.items() if "List" in op) <= 1, waited
    for requests in (plain, waited):
        assert requests.writes["context/*"] == EVENTS  # the context head, written once per commit

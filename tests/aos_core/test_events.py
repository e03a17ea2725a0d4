from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aos_core.events import AgentId, Event, TopicId

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def test_defaults_follow_cloudevents() -> None:
    event = Event(type="order.created")
    assert event.specversion == "1.0"
    assert len(event.id) == 36 and event.source == "aos"
    assert event.time.tzinfo is not None
    assert event.datacontenttype == "application/json"


@given(data=json_values, subject=st.none() | st.text(min_size=1, max_size=20), corr=st.none() | st.uuids())
def test_json_round_trip_is_lossless(data: object, subject: str | None, corr: object) -> None:
    event = Event(type="x.y", source="tests", subject=subject, data=data,
                  correlationid=str(corr) if corr else None,
                  traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert Event.from_json(event.to_json()) == event
    assert Event.model_validate(json.loads(json.dumps(event.to_dict()))) == event


def test_naive_time_is_read_as_utc() -> None:
    event = Event(type="t", time=datetime(2026, 1, 1, 12, 0))
    assert event.time == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", [{"type": ""}, {"type": "has space"}, {"type": "t", "specversion": "0.3"},
                                 {"type": "t", "unknown": 1}, {"type": "t", "traceparent": "nope"}])
def test_bad_events_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Event.model_validate(bad)


def test_agent_id_round_trips_and_validates() -> None:
    agent = AgentId("tally", "t-1.a_b")
    assert str(agent) == "tally/t-1.a_b"
    assert AgentId.from_str(str(agent)) == agent
    assert hash(agent) == hash(AgentId("tally", "t-1.a_b"))
    for bad in ["", "Upper", "-lead", "a" * 64, "sp ace", "sl/ash"]:
        with pytest.raises(ValueError):
            AgentId("tally", bad)
    with pytest.raises(ValueError):
        AgentId.from_str("no-slash")
    with pytest.raises(AttributeError):
        agent.key = "x"  # type: ignore[misc]


def test_topic_id() -> None:
    assert TopicId.from_str("agent.events").name == "agent.events"
    with pytest.raises(ValueError):
        TopicId("bad topic")

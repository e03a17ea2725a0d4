"""`GET /api/deadletters` over function_app's functions: what the topic triggers could never turn into events."""

from __future__ import annotations

import pytest
from azure.functions.servicebus import ServiceBusMessage

from aos_core import runtime
from tests.support.durable_webhook import SignalRecorder
from tests.support.function_calls import body_of, call, functions, principal

pytestmark = pytest.mark.usefixtures("warm_kernel")


async def poison(topic_function: str, message_id: str, body: bytes, durable: SignalRecorder,
                 delivery_count: int = 1) -> None:
    message = ServiceBusMessage(body=body, message_id=message_id, content_type="application/cloudevents+json",
                                delivery_count=delivery_count, application_properties={}, user_properties={})
    # Dead-lettered at once: the function returns (the message completes), it does not raise to be retried.
    await functions()[topic_function].get_user_function()(message=message, client=durable.client_binding())


async def test_poison_messages_are_listed_with_their_topic_reason_and_time(durable: SignalRecorder) -> None:
    assert body_of(await call("list_deadletters")) == {"deadletters": [], "next": None}
    await poison("events_topic", "p-1", b"\xff garbage", durable, delivery_count=3)
    await poison("messages_topic", "p-2", b'{"specversion": "1.0", "id": "x", "source": "s"}', durable)
    listed = body_of(await call("list_deadletters"))["deadletters"]
    by_message = {d["message_id"]: d for d in listed}
    assert by_message.keys() == {"p-1", "p-2"}
    assert (by_message["p-1"]["topic"], by_message["p-1"]["reason"], by_message["p-1"]["delivery_count"]) == (
        "agent.events", "body is not acceptable JSON: the body is not valid UTF-8 (byte 0xff at offset 0)", 3)
    assert by_message["p-2"]["topic"] == "agent.messages" and by_message["p-2"]["reason"]
    assert all(d["recorded_at"] and d["id"] for d in listed)
    assert by_message["p-2"]["body"].startswith('{"specversion"')


async def test_pages_follow_the_next_link_until_every_dead_letter_was_seen(durable: SignalRecorder) -> None:
    for i in range(3):
        await poison("events_topic", f"p-{i}", b"not json", durable)
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        page = body_of(await call("list_deadletters", params=params))
        seen += [d["message_id"] for d in page["deadletters"]]
        if page["next"] is None:
            break
        params = {"limit": "2", "after": page["next"].split("after=")[1].split("&")[0]}
    assert sorted(seen) == ["p-0", "p-1", "p-2"]


async def test_a_record_written_by_something_else_is_listed_not_a_failure() -> None:
    await runtime.with_aos(lambda aos: aos.store.put("deadletters/abc", ["not", "a", "record"]))
    [item] = body_of(await call("list_deadletters"))["deadletters"]
    assert item == {"id": "abc", "topic": None, "message_id": None, "reason": "unreadable dead-letter record",
                    "delivery_count": None, "recorded_at": None, "body": None}


@pytest.mark.parametrize("params", [{"after": "../x"}, {"after": "ABC"}, {"limit": "0"}, {"limit": "1001"}])
async def test_bad_paging_is_a_400_that_says_why(params: dict[str, str]) -> None:
    response = await call("list_deadletters", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in body_of(response)["detail"]


async def test_reading_dead_letters_needs_the_reader_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_AUTH__TRUST_PRINCIPAL_HEADER", "true")
    nobody = await call("list_deadletters", headers={"x-ms-client-principal": principal()})
    assert nobody.status_code == 403
    reader = await call("list_deadletters", headers={"x-ms-client-principal": principal("reader")})
    assert reader.status_code == 200

from __future__ import annotations

from tests.services.devhost.conftest import ADMIN, Running, until


async def test_topic_messages_reach_the_trigger_with_their_properties(running: Running) -> None:
    async with running.client(ADMIN) as http:
        event = {"type": "order.created", "id": "m-1", "correlationid": "conv-9", "data": {"n": 1}}
        r = await http.post("/admin/servicebus/topics/sample.events/messages", json=event)
        assert r.status_code == 201 and r.json()["ids"] == ["m-1"]

        async def received() -> bool:
            return len(running.calls.messages) == 1

        await until(received)
    seen = running.calls.messages[0]
    assert (seen["id"], seen["correlation_id"], seen["delivery_count"], seen["type"]) == (
        "m-1", "conv-9", 1, "order.created")
    assert seen["properties"]["cloudEvents_type"] == "order.created" and seen["enqueued"] is not None
    stats = await running.host.bus.stats("sample.events", "sub")
    assert stats["active"] == stats["locked"] == 0  # completed


async def test_a_poison_message_is_retried_then_dead_lettered_and_the_host_keeps_serving(running: Running) -> None:
    async with running.client(ADMIN) as http:
        await http.post("/admin/servicebus/topics/sample.events/messages", json={"type": "poison", "id": "bad-1"})

        async def dead() -> bool:
            return bool(await running.host.bus.dead_letters("sample.events", "sub"))

        await until(dead)
        letter = (await running.host.bus.dead_letters("sample.events", "sub"))[0]
        assert letter.event.id == "bad-1" and letter.delivery_count == 3  # max_delivery_count of the test host
        assert letter.reason == "MaxDeliveryCountExceeded" and "cannot digest this" in (letter.description or "")
        assert running.host.invoker.counts["on_message"]["Failed"] == 3
        await http.post("/admin/servicebus/topics/sample.events/messages", json={"type": "fine", "id": "ok-1"})

        async def received() -> bool:
            return [m["id"] for m in running.calls.messages] == ["ok-1"]

        await until(received)
        status = (await http.get("/admin/status")).json()
        topic = next(t for t in status["topics"] if t["topic"] == "sample.events")
        assert topic["dead_lettered"] == 1 and topic["dead_letters"][0]["reason"] == "MaxDeliveryCountExceeded"


async def test_posting_anything_but_cloudevents_is_a_400(running: Running) -> None:
    async with running.client(ADMIN) as http:
        url = "/admin/servicebus/topics/sample.events/messages"
        assert (await http.post(url, content=b"{oops")).status_code == 400
        r = await http.post(url, json={"data": 1})  # no type
        assert r.status_code == 400 and r.json()["errors"]
        assert (await http.post("/admin/servicebus/topics/bad topic!/messages", json={"type": "x"})).status_code == 400
    assert running.calls.messages == []


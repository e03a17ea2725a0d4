from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents import BaseAgent, Goal, PerpetualAgent, PurposeDrivenAgent
from agents.tally import TallyAgent
from aos_core.agent_context import AgentContext
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore


class OrderDesk(BaseAgent):
    capabilities = ("orders",)


def test_type_names_and_descriptions() -> None:
    assert OrderDesk.agent_type == "order_desk"
    assert TallyAgent.agent_type == "tally"
    names = {"CEO": "ceo", "CEOAgent": "ceo", "HTTPGatewayAgent": "http_gateway", "MyCFOHelper": "my_cfo_helper",
             "Agent2Agent": "agent2", "OrderDeskAgent": "order_desk"}
    assert {name: type(name, (BaseAgent,), {}).agent_type for name in names} == names
    agent = OrderDesk("desk-1", capabilities=["intake"], depends_on=["ledger"])
    assert agent.describe() == {"id": "desk-1", "type": "order_desk", "capabilities": ["orders", "intake"],
                                "depends_on": ["ledger"], "perpetual": False}
    with pytest.raises(ValueError):
        OrderDesk("Bad Id")


async def test_tally_counts_by_type_and_saves_with_the_event_id() -> None:
    store = InMemoryStateStore()
    tally = TallyAgent("t1")
    tally.bind(store)
    await tally.initialize()
    assert tally.state == {"total": 0, "by_type": {}}
    clock = ManualClock()
    for type_ in ["a", "b", "a"]:
        event = Event(type=type_)
        status, result = await tally.process(event, AgentContext("t1", event, clock))
        assert status == "completed"
    assert result == {"total": 3}
    again = TallyAgent("t1")
    again.bind(store)
    await again.initialize()
    assert again.state == {"total": 3, "by_type": {"a": 2, "b": 1}}
    assert again.context is not None and again.context.has_applied(event.id)
    assert (await again.process(event, AgentContext("t1", event, clock)))[0] == "duplicate"


async def test_a_failing_handler_leaves_no_half_applied_state() -> None:
    class Careless(PerpetualAgent):
        async def handle_event(self, event: Event) -> Any:
            self.state["half"] = True
            raise RuntimeError("midway")

    agent = Careless("c1")
    agent.bind(InMemoryStateStore())
    await agent.initialize()
    event = Event(type="x")
    with pytest.raises(RuntimeError):
        await agent.process(event, AgentContext("c1", event, ManualClock()))
    assert agent.state == {}
    assert agent.context is not None and not agent.context.has_applied(event.id)


async def test_messages_sent_while_handling_wait_in_the_outbox() -> None:
    class Forwarder(PerpetualAgent):
        async def handle_event(self, event: Event) -> Any:
            self.ctx.send("cfo", "budget.request", {"amount": 5})
            self.ctx.publish("initiative.started", {"name": "x"})
            return None

    agent = Forwarder("ceo")
    agent.bind(InMemoryStateStore())
    await agent.initialize()
    event = Event(type="go", correlationid="conv-1")
    ctx = AgentContext("ceo", event, ManualClock())
    await agent.process(event, ctx)
    assert [(o.to_agent, o.event.type, o.event.correlationid, o.event.source) for o in ctx.outbox] == [
        ("cfo", "budget.request", "conv-1", "agents/ceo"), (None, "initiative.started", "conv-1", "agents/ceo")]


async def test_purpose_driven_goals_measure_progress() -> None:
    class SalesAgent(PurposeDrivenAgent):
        def __init__(self) -> None:
            super().__init__(agent_id="sales", purpose="Grow revenue", adapter_name="sales", goals=[
                Goal(id="revenue", metric="revenue", target=100.0),
                {"id": "churn", "metric": "churn", "target": 0.05, "direction": "at_most", "baseline": 0.2},
            ])

        async def handle_event(self, event: Event) -> Any:
            self.increment_metric("revenue", event.data["amount"])
            await self.save_state()
            return self.evaluate_progress()["overall"]

    store = InMemoryStateStore()
    agent = SalesAgent()
    agent.bind(store)
    await agent.initialize()
    agent.record_metric("churn", 0.125)
    report = agent.evaluate_progress()
    assert report["purpose"] == "Grow revenue"
    assert [g["progress"] for g in report["goals"]] == [0.0, 0.5]
    event = Event(type="sale", data={"amount": 150})
    _, overall = await agent.process(event, AgentContext("sales", event, ManualClock()))
    assert overall == 0.75
    assert agent.context is not None and agent.context.version == 1  # save_state inside a handler: one write
    assert agent.metrics["revenue"] == 150 and isinstance(agent.metrics["revenue"], int)  # a count stays a count
    reloaded = SalesAgent()
    reloaded.bind(store)
    await reloaded.initialize()
    assert reloaded.evaluate_progress()["goals"][0]["met"] is True
    assert reloaded.describe()["adapter_name"] == "sales"


async def test_save_state_outside_an_event_writes_at_once() -> None:
    store = InMemoryStateStore()
    agent = TallyAgent("t2")
    agent.bind(store)
    await agent.initialize()
    agent.state["total"] = 41
    await agent.save_state()
    assert (await TallyAgent.read_context(store, "t2"))["state"]["total"] == 41


async def test_a_goal_with_nothing_to_measure_is_not_met_and_goals_show_before_the_first_event() -> None:
    class Finance(PurposeDrivenAgent):
        default_goals = (Goal(id="decide", metric="decided", target=4),
                         Goal(id="no-overruns", metric="over_budget", target=0, direction="at_most", baseline=3,
                              measured_over="spending"))

    agent = Finance("fin")
    agent.bind(InMemoryStateStore())
    await agent.initialize()
    first = agent.state["progress"]  # in the state before any event, for the dashboard and the API
    assert [(g["id"], g["measured"], g["met"], g["percent"]) for g in first["goals"]] == [
        ("decide", True, False, 0), ("no-overruns", False, False, 0)]
    agent.record_metric("over_budget", 0)  # 0 of 0 departments over budget: nothing measured yet
    agent.increment_metric("decided")
    report = agent.evaluate_progress()
    assert report["goals"][1]["met"] is False and report["percent"] == 13  # (0.25 + 0) / 2, halves rounded up
    agent.record_metric("spending", 2)
    report = agent.evaluate_progress()
    assert report["goals"][1]["met"] is True and report["percent"] == 63


async def test_a_users_class_named_like_a_built_in_type_gets_a_type_of_its_own(tmp_path: Path) -> None:
    from aos_core import AgentOperatingSystem, AOSConfig

    class CEOAgent(PurposeDrivenAgent):  # the built-in `ceo` type is agents.business.ceo.CEOAgent
        async def handle_event(self, event: Event) -> Any:
            return "mine"

    aos = AgentOperatingSystem(AOSConfig(data_dir=tmp_path))
    await aos.initialize()
    try:
        await aos.register_agent(CEOAgent("boss"), subscribe=["boss.*"])
        assert (await aos.get_agent("boss"))["type"] == "test_agents.ceo"
        assert (await aos.process_event(Event(type="boss.ask")))[0].result == "mine"
        await aos.register_agent("ceo", agent_id="ceo")  # the built-in one is still there under its name
        assert (await aos.get_agent("ceo"))["type"] == "ceo"
    finally:
        await aos.shutdown()

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents import BaseAgent, PerpetualAgent
from agents.business.cfo import CFOAgent
from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import RegistrationError
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore, SqliteStateStore

STARTED: list[str] = []


class Recorder(BaseAgent):
    """A stateless agent that notes its start and echoes events."""

    agent_type = "recorder"
    capabilities = ("echo",)

    async def initialize(self) -> None:
        STARTED.append(self.agent_id)

    async def handle_event(self, event: Event) -> Any:
        return {"seen": event.type}


class Relay(PerpetualAgent):
    """Forwards every event to the agent named in its config, in the same conversation."""

    agent_type = "relay"

    async def handle_event(self, event: Event) -> Any:
        self.ctx.send(self.config["to"], "relayed", {"original": event.type})
        return "sent"


def config(tmp_path: Path, **overrides: Any) -> AOSConfig:
    return AOSConfig(data_dir=tmp_path / "data", **overrides)


@pytest.fixture(params=["sqlite", "memory"])
async def aos(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AgentOperatingSystem]:
    store = SqliteStateStore(tmp_path / "state.db") if request.param == "sqlite" else InMemoryStateStore()
    kernel = AgentOperatingSystem(config(tmp_path), store=store, clock=ManualClock())
    await kernel.initialize()
    yield kernel
    await kernel.shutdown()
    await store.close()


async def test_events_reach_subscribers_and_state_is_kept(aos: AgentOperatingSystem) -> None:
    await aos.register_agent(TallyAgent("orders"), subscribe=["order.*"])
    results = await aos.process_event(Event(type="order.created"))
    assert [(r.agent_id, r.status, r.result) for r in results] == [("orders", "completed", {"total": 1})]
    await aos.process_event(Event(type="order.paid"))
    assert await aos.process_event(Event(type="ticket.opened")) == []
    snapshot = await aos.agent_state("orders")
    assert snapshot is not None
    assert snapshot["state"] == {"total": 2, "by_type": {"order.created": 1, "order.paid": 1}}


async def test_a_thousand_concurrent_events_to_one_agent_never_interleave(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="hot", subscribe=["*"])
    results = await asyncio.gather(*(aos.process_event(Event(type=f"k{i % 7}")) for i in range(1000)))
    assert all(r[0].status == "completed" for r in results)
    snapshot = await aos.agent_state("hot")
    assert snapshot is not None and snapshot["state"]["total"] == 1000
    assert sum(snapshot["state"]["by_type"].values()) == 1000


async def test_different_agents_run_concurrently(aos: AgentOperatingSystem) -> None:
    gate = asyncio.Event()

    class Waiter(BaseAgent):
        agent_type = "waiter"

        async def handle_event(self, event: Event) -> Any:
            await gate.wait()
            return "released"

    await aos.register_agent(Waiter("slow"), subscribe=["slow"])
    await aos.register_agent(Recorder("fast"), subscribe=["fast"])
    slow = asyncio.ensure_future(aos.process_event(Event(type="slow")))
    fast = await asyncio.wait_for(aos.process_event(Event(type="fast")), 5)
    assert fast[0].result == {"seen": "fast"} and not slow.done()
    gate.set()
    assert (await slow)[0].result == "released"


async def test_a_redelivered_event_is_applied_once(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="t1", subscribe=["*"])
    event = Event(type="x")
    first = await aos.process_event(event)
    assert first[0].status == "completed"
    assert await aos.process_event(event) == first  # a resend gets the first outcome back
    assert (await aos.apply_delivery("t1", event)).status == "duplicate"  # a second signal to its mailbox
    snapshot = await aos.agent_state("t1")
    assert snapshot is not None and snapshot["state"]["total"] == 1


async def test_type_subscription_picks_the_agent_by_subject(aos: AgentOperatingSystem) -> None:
    aos.subscribe("click", agent_type="tally")
    for subject in ["u1", "u2", "u1"]:
        await aos.process_event(Event(type="click", subject=subject))
    assert (await aos.agent_state("u1"))["state"]["total"] == 2  # type: ignore[index]
    assert (await aos.agent_state("u2"))["state"]["total"] == 1  # type: ignore[index]
    await aos.register_agent(Recorder("rec"))
    results = await aos.process_event(Event(type="click", subject="rec"))
    assert results[0].status == "rejected" and "type 'recorder'" in (results[0].error or "")


async def test_missing_dependency_or_cycle_registers_nothing(aos: AgentOperatingSystem) -> None:
    with pytest.raises(RegistrationError, match="depends on 'ledger', which is not registered"):
        await aos.register_agent("tally", agent_id="cfo", depends_on=["ledger"])
    assert await aos.registry.get("cfo") is None
    await aos.register_agent("tally", agent_id="a")
    await aos.register_agent("tally", agent_id="b", depends_on=["a"])
    with pytest.raises(RegistrationError, match="cycle"):
        await aos.register_agent("tally", agent_id="a", depends_on=["b"])
    assert (await aos.registry.require("a")).depends_on == []


async def test_configured_agents_start_in_dependency_order(tmp_path: Path) -> None:
    STARTED.clear()
    instances = [
        {"type": "recorder", "id": "ceo", "depends_on": ["cfo", "cto"]},
        {"type": "recorder", "id": "cto", "depends_on": ["ledger"]},
        {"type": "recorder", "id": "cfo", "depends_on": ["ledger"]},
        {"type": "recorder", "id": "ledger"},
    ]
    cfg = config(tmp_path, agents={"instances": instances})
    kernel = AgentOperatingSystem(cfg, store=InMemoryStateStore(), clock=ManualClock())
    kernel.register_type(Recorder)  # before initialize: available to the configured instances
    try:
        await kernel.initialize()
        assert STARTED.index("ledger") < STARTED.index("cfo") < STARTED.index("ceo")
        assert STARTED.index("cto") < STARTED.index("ceo")
        assert {a["id"] for a in await kernel.list_agents()} == {"ceo", "cto", "cfo", "ledger"}
        assert all(a["state"] == "running" for a in await kernel.list_agents())
    finally:
        await kernel.shutdown()


async def test_a_config_cycle_is_a_clear_error(tmp_path: Path) -> None:
    instances = [{"type": "tally", "id": "a", "depends_on": ["b"]}, {"type": "tally", "id": "b", "depends_on": ["a"]}]
    kernel = AgentOperatingSystem(config(tmp_path, agents={"instances": instances}), store=InMemoryStateStore(),
                                  clock=ManualClock())
    with pytest.raises(RegistrationError, match="cycle"):
        await kernel.initialize()
    await kernel.shutdown()


async def test_discovery_by_capability(aos: AgentOperatingSystem) -> None:
    await aos.register_agent(Recorder("r1"))
    await aos.register_agent("tally", agent_id="t1", config={"capabilities": ["finance"]})
    assert [a["id"] for a in await aos.list_agents(capability="echo")] == ["r1"]
    assert [a["id"] for a in await aos.list_agents(capability="finance")] == ["t1"]
    assert {a["id"] for a in await aos.list_agents(capability="count")} == {"t1"}
    assert [a["id"] for a in await aos.list_agents(agent_type="recorder")] == ["r1"]


async def test_builtin_types_need_no_installed_package_metadata(tmp_path: Path) -> None:
    # A Functions deployment has no entry points of this repository: the shipped types must not need them.
    cfg = config(tmp_path, agents={"load_entry_points": False})
    kernel = AgentOperatingSystem(cfg, store=InMemoryStateStore(), clock=ManualClock())
    await kernel.initialize()
    try:
        assert {"tally", "ceo", "cfo", "cto"} <= set(kernel.registry.types)
        assert kernel.registry.agent_class("tally") is TallyAgent
        assert kernel.registry.agent_class("cfo") is CFOAgent
    finally:
        await kernel.shutdown()


async def test_an_installed_plugin_package_adds_types_through_entry_points(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real distribution on the path (what `pip install aos-plugin` leaves), found by importlib.metadata.
    site = tmp_path / "site"
    (site / "aos_plugin_demo").mkdir(parents=True)
    (site / "aos_plugin_demo" / "__init__.py").write_text(
        "from agents.tally import TallyAgent\n\nclass PluginAgent(TallyAgent):\n    agent_type = 'plugged'\n")
    dist = site / "aos_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aos-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[aos.agents]\nplugged = aos_plugin_demo:PluginAgent\n")
    monkeypatch.syspath_prepend(str(site))
    for name, load_entry_points in (("with", True), ("without", False)):
        cfg = config(tmp_path / name, agents={"load_entry_points": load_entry_points})
        kernel = AgentOperatingSystem(cfg, store=InMemoryStateStore(), clock=ManualClock())
        await kernel.initialize()
        try:
            assert kernel.registry.has_type("plugged") is load_entry_points
            assert kernel.registry.has_type("tally")
        finally:
            await kernel.shutdown()


async def test_agent_types_from_config(tmp_path: Path) -> None:
    cfg = config(tmp_path, agents={"builtin_types": False, "load_entry_points": False,
                                   "types": {"counter": "agents.tally:TallyAgent"},
                                   "instances": [{"type": "counter", "id": "c1", "config": {"subscribe": ["*"]}}]})
    kernel = AgentOperatingSystem(cfg, store=InMemoryStateStore(), clock=ManualClock())
    await kernel.initialize()
    try:
        assert not kernel.registry.has_type("tally")
        assert (await kernel.process_event(Event(type="x")))[0].result == {"total": 1}
    finally:
        await kernel.shutdown()


async def test_agents_talk_through_the_kernel_in_one_conversation(aos: AgentOperatingSystem) -> None:
    await aos.register_agent(Relay("relay", config={"to": "sink"}), subscribe=["start"])
    await aos.register_agent("tally", agent_id="sink")
    start = Event(type="start")
    await aos.process_event(start)
    await aos.run_until_idle()
    snapshot = await aos.agent_state("sink")
    assert snapshot is not None and snapshot["state"]["by_type"] == {"relayed": 1}


async def test_terminated_agents_refuse_events(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="t1", subscribe=["*"])
    await aos.process_event(Event(type="x"))
    await aos.terminate_agent("t1")
    info = await aos.get_agent("t1")
    assert info["state"] == "terminated" and not info["live"]
    assert await aos.process_event(Event(type="x")) == []
    message = await aos.send_message("t1", Event(type="x"))
    assert message.status == "rejected" and "terminated" in (message.error or "")
    with pytest.raises(RegistrationError):
        await aos.register_agent("tally", agent_id="t1")


async def test_an_agent_with_dependents_cannot_be_terminated(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="ledger")
    await aos.register_agent("tally", agent_id="cfo", depends_on=["ledger"])
    with pytest.raises(RegistrationError, match="cfo depend"):
        await aos.terminate_agent("ledger")


async def test_workflow_steps_send_events(aos: AgentOperatingSystem) -> None:
    from aos_core.workflow import WorkflowDefinition, WorkflowStep

    await aos.register_agent("tally", agent_id="w1", subscribe=["step.*"])
    definition = WorkflowDefinition(name="two-steps", steps=[
        WorkflowStep(name="first", action="event", input={"type": "step.one"}),
        WorkflowStep(name="second", action="event", input={"type": "step.two"}, depends_on=["first"]),
    ])
    workflow_id = await aos.workflows.start(definition)
    await aos.workflows.run(workflow_id)
    state = await aos.workflows.get(workflow_id)
    assert state["status"] == "completed"
    assert (await aos.agent_state("w1"))["state"]["total"] == 2  # type: ignore[index]

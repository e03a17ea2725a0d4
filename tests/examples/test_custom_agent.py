"""The copyable custom agent works as its docs say: named by config, registered at run time, fed events."""

from __future__ import annotations

import json
from pathlib import Path

from aos_core import AgentOperatingSystem, AOSConfig, Event

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_agent"


async def test_support_desk_counts_answers_and_asks_the_cto(tmp_path: Path) -> None:
    types = json.loads((EXAMPLE / "config.json").read_text())["agents"]["types"]
    aos = AgentOperatingSystem(AOSConfig(data_dir=tmp_path, agents={"types": types}))
    await aos.initialize()
    try:
        await aos.register_agent("support_desk", agent_id="support", subscribe=["ticket.*"])
        await aos.register_agent("tally", agent_id="cto")  # stands in for the CTO: counts what it is sent
        opened = await aos.process_event(Event(type="ticket.opened", data={"ticket": "T-1", "severity": "high"}))
        assert [(r.agent_id, r.result) for r in opened] == [("support", {"open": 1})]
        await aos.process_event(Event(type="ticket.answered", data={"ticket": "T-1"}))
        bad = await aos.process_event(Event(type="ticket.opened", data={}))
        assert bad[0].status == "rejected"
        await aos.run_until_idle()
        state = (await aos.agent_state("support"))["state"]  # type: ignore[index]
        assert state["open"] == {} and state["progress"]["goals"][0]["current"] == 1
        assert (await aos.agent_state("cto"))["state"]["by_type"] == {"ops.incident": 1}  # type: ignore[index]
    finally:
        await aos.shutdown()

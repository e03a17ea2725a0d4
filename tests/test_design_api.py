"""The calls of "The Python API users already write" (shared DESIGN.md), exactly as written there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aos_core.events import Event


async def test_the_python_api_users_already_write(tmp_path: Path) -> None:
    from aos_core import AgentOperatingSystem, AOSConfig

    config = AOSConfig(data_dir=tmp_path / "aos")
    aos = AgentOperatingSystem(config); await aos.initialize()  # noqa: E702

    from agents import PurposeDrivenAgent

    class CEOAgent(PurposeDrivenAgent):
        def __init__(self):  # type: ignore[no-untyped-def]
            super().__init__(agent_id="ceo", purpose="Strategic oversight", adapter_name="ceo")

        async def handle_event(self, event):  # type: ignore[no-untyped-def]
            self.state.setdefault("decisions", []).append(event.data)
            await self.save_state()

    agent = CEOAgent()
    await aos.register_agent(agent, subscribe=["strategy.*"])
    event = Event(type="strategy.initiative", data={"name": "launch X"})
    await aos.register_agent(agent); await aos.process_event(event)  # noqa: E702
    assert agent.state["decisions"] == [{"name": "launch X"}]
    await agent.initialize()  # loads state again from its ContextMCPServer
    assert agent.state["decisions"] == [{"name": "launch X"}]

    from services.context import ContextMCPServer

    server = ContextMCPServer("ceo"); await server.initialize()  # noqa: E702
    assert server.state["decisions"] == [{"name": "launch X"}]
    await server.save_state({"decisions": []})

    from services.messaging import MessageBus

    message_bus = MessageBus(aos.bus)
    received: list[Any] = []

    async def my_handler(event: Event) -> None:
        received.append(event.data)

    await message_bus.subscribe(topic="agent.events", handler=my_handler)
    data = {"kind": "hello"}
    await message_bus.publish(topic="agent.events", message=data)

    async def send_agent_message(from_agent: str, to_agent: str, message: Any) -> Event:
        return await message_bus.send_agent_message(from_agent, to_agent, message)

    sent = await send_agent_message("ceo", "cfo", {"ask": "budget"})
    assert sent.subject == "cfo" and sent.source == "agents/ceo"

    from services.storage import Storage

    storage = Storage(aos.store)
    await storage.upload("container", "blob", b"data"); data2 = await storage.download("container", "blob")  # noqa: E702
    assert data2 == b"data"
    key, value = "settings/theme", {"dark": True}
    await storage.save(key, value)
    assert await storage.load(key) == value

    for _ in range(100):
        if received:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert received == [{"kind": "hello"}]
    await message_bus.close()
    await aos.shutdown()

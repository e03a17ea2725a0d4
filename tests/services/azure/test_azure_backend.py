"""The kernel and the user-facing storage calls on the Azure backend (Blob Storage on Azurite), selected by
settings alone; and the Azure SDKs stay unloaded when the embedded backend is selected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.context import ContextMCPServer
from services.storage import Storage
from tests.azurite import Azurite


@pytest.fixture
def azure_settings(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_STORAGE__BACKEND", "azure")
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)


async def empty_state() -> None:
    from aos_core.runtime import build_state_store

    store = await build_state_store(AOSConfig())
    for doc in await store.list(limit=100_000):
        await store.delete(doc.key)
    await store.close()


async def test_tally_flow_on_azure_survives_a_restart(azure_settings: None, tmp_path: Path) -> None:
    await empty_state()
    events = [Event(id=f"evt-{i}", type="order.created" if i % 2 else "tally.ping") for i in range(6)]

    aos = AgentOperatingSystem(AOSConfig(), clock=ManualClock())
    await aos.initialize()
    assert type(aos.store).__name__ == "BlobStateStore"
    await aos.register_agent("tally", agent_id="all-events", config={"subscribe": ["*"]})
    await aos.register_agent("tally", agent_id="orders", config={"subscribe": ["order.*"]},
                             depends_on=["all-events"])
    for event in events:
        results = {r.agent_id: r for r in await aos.process_event(event)}
        assert results["all-events"].status == "completed"
    assert (await aos.agent_state("all-events"))["state"]["total"] == 6  # type: ignore[index]
    assert (await aos.agent_state("orders"))["state"]["total"] == 3  # type: ignore[index]
    await aos.shutdown()

    again = AgentOperatingSystem(AOSConfig(), clock=ManualClock())  # a new worker: everything comes from Storage
    await again.initialize()
    try:
        assert {a["id"] for a in await again.list_agents()} >= {"all-events", "orders"}
        replay = {r.agent_id: r.status for r in await again.process_event(events[1])}
        assert replay == {"all-events": "completed", "orders": "completed"}  # the first outcome, not applied again
        assert (await again.apply_delivery("orders", events[1])).status == "duplicate"  # exactly once across workers
        fresh = await again.process_event(Event(id="evt-new", type="order.shipped"))
        assert {r.agent_id: r.result for r in fresh} == {"all-events": {"total": 7}, "orders": {"total": 4}}
    finally:
        await again.shutdown()


async def test_context_server_and_storage_calls_run_unchanged(azure_settings: None) -> None:
    from aos_core.runtime import build_state_store

    store = await build_state_store(AOSConfig())
    try:
        server = ContextMCPServer("ceo", store)
        await server.initialize()
        await server.save_state({"initiatives": ["launch X"]})
        reread = ContextMCPServer("ceo", store)
        await reread.initialize()
        assert reread.state == {"initiatives": ["launch X"]}

        storage = Storage(store)
        await storage.upload("reports", "q1/summary.txt", "quarterly ✓")
        assert await storage.download("reports", "q1/summary.txt") == "quarterly ✓".encode()
        await storage.save("settings/theme", {"dark": True})
        assert await storage.load("settings/theme") == {"dark": True}
        assert await storage.list("settings/") == {"settings/theme": {"dark": True}}
    finally:
        await store.close()


async def test_agent_object_on_azure(azure_settings: None) -> None:
    aos = AgentOperatingSystem(AOSConfig(), clock=ManualClock())
    await aos.initialize()
    try:
        await aos.register_agent(TallyAgent("kept-live"), subscribe=["ping"])
        assert (await aos.process_event(Event(type="ping")))[0].status == "completed"
    finally:
        await aos.shutdown()


def test_embedded_backend_loads_no_azure_sdk(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from aos_core import AOSConfig\n"
        "from aos_core.runtime import build_state_store, build_event_bus, build_secret_store\n"
        "async def main():\n"
        f"    config = AOSConfig(data_dir={str(tmp_path)!r})\n"
        "    store = await build_state_store(config); bus = await build_event_bus(config)\n"
        "    secrets = build_secret_store(config)\n"
        "    await store.put('k', 1); await secrets.get_secret('home')\n"
        "    await store.close(); await bus.close()\n"
        "asyncio.run(main())\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'azure')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "", f"the sqlite backend imported: {out.stdout.strip()}"


def test_aos_run_samples_on_azure_twice(azure_settings: None, azurite: Azurite, tmp_path: Path) -> None:
    """`make run`'s flow with AOS_STORAGE__BACKEND=azure: the second run sees every sample as a duplicate."""
    import asyncio
    import os

    asyncio.run(empty_state())
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "AOS_STORAGE__BACKEND": "azure", "AzureWebJobsStorage": azurite.connection_string}
    command = [sys.executable, "-m", "services.cli", "run",
               "--config", str(repo / "examples/config"), "--events", str(repo / "examples/events"),
               "--data", str(tmp_path / "data")]
    first = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "completed" in first.stdout and "seen before" in first.stdout  # the samples repeat one event
    second = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    lines = [line for line in second.stdout.splitlines() if "->" in line]
    assert lines and all("seen before, not applied again" in line or "no subscriber" in line for line in lines), (
        second.stdout)
    assert not (tmp_path / "data" / "state.db").exists()  # the state went to Blob Storage, not SQLite

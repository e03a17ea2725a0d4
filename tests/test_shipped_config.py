"""The `config/` folder a deployment ships: which agents a new app has, and app settings that tune them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import ConfigError
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore

SHIPPED = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(SHIPPED))


async def _kernel() -> AgentOperatingSystem:
    kernel = AgentOperatingSystem(AOSConfig(), store=InMemoryStateStore(), clock=ManualClock())
    await kernel.initialize()
    return kernel


async def test_a_new_deployment_starts_with_the_business_agents_and_their_schedules(shipped: None) -> None:
    kernel = await _kernel()
    try:
        assert {a["id"] for a in await kernel.list_agents()} == {"ceo", "cfo", "cto"}
        assert {s.id for s in kernel.config.schedules if s.enabled} == {"cfo-variance-report", "ceo-weekly-summary"}
        await kernel.process_event(Event(type="finance.spend_request", subject="cfo",
                                         data={"department": "marketing", "amount": 750_000}))
        await kernel.run_until_idle()
        ledger = (await kernel.agent_state("cfo"))["state"]["ledger"]
        assert ledger["marketing"] == {"budget": 400_000.0, "spent": 0.0, "currency": "USD", "entries": []}
    finally:
        await kernel.shutdown()


async def test_app_settings_set_budgets_and_schedules(shipped: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_AGENTS__OVERRIDES__CFO__BUDGETS__MARKETING", "900000")
    monkeypatch.setenv("AOS_AGENTS__OVERRIDES__CFO__BUDGETS__SUPPORT", "50000")
    monkeypatch.setenv("AOS_SCHEDULE_OVERRIDES__CFO_VARIANCE_REPORT__ENABLED", "false")
    monkeypatch.setenv("AOS_SCHEDULE_OVERRIDES__CEO_WEEKLY_SUMMARY__CRON", "0 30 7 * * 1-5")
    kernel = await _kernel()
    try:
        schedules = {s.id: s for s in kernel.config.schedules}
        assert not schedules["cfo-variance-report"].enabled
        assert schedules["ceo-weekly-summary"].cron == "0 30 7 * * 1-5"
        assert schedules["ceo-weekly-summary"].event_type == "strategy.weekly_summary.due"
        await kernel.process_event(Event(type="finance.budget.set", subject="cfo",
                                         data={"department": "product", "amount": 1_000_000}))
        await kernel.run_until_idle()
        ledger = (await kernel.agent_state("cfo"))["state"]["ledger"]
        budgets = {department: account["budget"] for department, account in ledger.items()}
        # The setting changed one department and added one; the file's other budgets stay.
        assert budgets == {"product": 1_000_000.0, "marketing": 900_000.0, "engineering": 1_500_000.0,
                           "support": 50_000.0}
    finally:
        await kernel.shutdown()


@pytest.mark.parametrize(("name", "message"), [
    ("AOS_AGENTS__OVERRIDES__CFX__BUDGETS__PRODUCT", "agents.overrides: 'cfx' names no configured id"),
    ("AOS_SCHEDULE_OVERRIDES__WEEKLY__CRON", "schedule_overrides: 'weekly' names no configured id"),
    ("AOS_SCHEDULE_OVERRIDES__CEO_WEEKLY_SUMMARY__CRONN", "cronn"),
])
def test_a_setting_that_names_nothing_is_an_error(shipped: None, monkeypatch: pytest.MonkeyPatch, name: str,
                                                  message: str) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match=message):
        AOSConfig()


async def test_an_agent_added_as_the_readme_says_starts_with_the_shipped_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "config"
    shutil.copytree(SHIPPED, folder)
    (folder / "custom-agent.json").write_text(json.dumps(
        {"agents": {"types": {"support_desk": "examples.custom_agent.support_desk:SupportDeskAgent"}}}))
    shipped = json.loads((folder / "aos.json").read_text())
    shipped["agents"]["instances"].append({"type": "support_desk", "id": "support",
                                           "config": {"subscribe": ["ticket.*"]}})
    (folder / "aos.json").write_text(json.dumps(shipped))
    monkeypatch.setenv("AOS_CONFIG_DIR", str(folder))
    kernel = await _kernel()
    try:
        assert {a["id"] for a in await kernel.list_agents()} == {"ceo", "cfo", "cto", "support"}
        opened = await kernel.process_event(Event(type="ticket.opened", data={"ticket": "T-1", "severity": "low"}))
        assert [(r.agent_id, r.result) for r in opened] == [("support", {"open": 1})]
    finally:
        await kernel.shutdown()

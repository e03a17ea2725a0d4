from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aos_core import AOSConfig
from aos_core.errors import ConfigError
from aos_core.testing import ManualClock, SequentialIds
from services.governance.audit import SqliteAuditLog
from services.observability import AlertEvaluator, HealthSnapshot, configure_telemetry, load_alert_rules, telemetry

ALERTS = [
    {"id": "high-failure", "kind": "failure_rate", "threshold": 0.2, "min_events": 10, "severity": "critical"},
    {"id": "dlq", "kind": "dead_letters", "threshold": 0, "subscription": "agent.events/*"},
    {"id": "agent-down", "kind": "agent_failed", "agent": "*"},
    {"id": "sb-open", "kind": "breaker_open", "breaker": "servicebus"},
]


@pytest.fixture
def fresh_telemetry() -> Iterator[None]:
    telemetry._reset_for_tests()
    yield
    telemetry._reset_for_tests()


def test_nothing_is_exported_without_settings(fresh_telemetry: None) -> None:
    assert configure_telemetry(environ={}) == "none"
    assert configure_telemetry(environ={telemetry.APPINSIGHTS: "InstrumentationKey=x"}) == "none"  # once only


def test_app_insights_configured_once(fresh_telemetry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Application Insights cannot run here: the distro's entry point is replaced at that boundary only.
    import azure.monitor.opentelemetry as distro

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: calls.append(kw))
    env = {telemetry.APPINSIGHTS: "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
    assert configure_telemetry(AOSConfig(), environ=env) == "azure_monitor"
    assert configure_telemetry(AOSConfig(), environ=env) == "azure_monitor"
    assert len(calls) == 1


def test_otlp_without_its_exporter_is_a_clear_error(fresh_telemetry: None) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
            configure_telemetry(environ={telemetry.OTLP: "http://127.0.0.1:4318"})
    else:
        pytest.skip("OTLP exporter installed")


def test_importing_observability_does_not_load_azure() -> None:
    code = ("import sys, services.observability, services.reliability, services.governance\n"
            "print(sorted(m for m in sys.modules if m.startswith('azure')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "[]"


@pytest.fixture
async def audit(tmp_path: Path) -> AsyncIterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", clock=ManualClock())
    yield log
    await log.close()


async def test_alerts_raise_once_resolve_and_are_audited(audit: SqliteAuditLog) -> None:
    evaluator = AlertEvaluator.from_config(ALERTS, audit=audit, clock=ManualClock(), ids=SequentialIds("alert"))
    calm = HealthSnapshot(events_processed=100, events_failed=5)
    assert await evaluator.evaluate(calm) == []
    bad = HealthSnapshot(events_processed=20, events_failed=10, dead_letters={"agent.events/kernel": 3},
                         agents={"cfo": "Failed", "ceo": "Running"},
                         breakers={"servicebus": {"state": "open", "retry_after": 30.0}, "blob": {"state": "open"}})
    raised = await evaluator.evaluate(bad)
    assert [(e.type, e.subject) for e in raised] == [
        ("aos.alert.raised", "high-failure"), ("aos.alert.raised", "dlq"),
        ("aos.alert.raised", "agent-down/cfo"), ("aos.alert.raised", "sb-open/servicebus")]
    assert raised[0].data["severity"] == "critical" and raised[0].data["failure_rate"] == 0.5
    assert await evaluator.evaluate(bad) == []  # still breaching: no repeat
    resolved = await evaluator.evaluate(HealthSnapshot(events_processed=5, events_failed=5))  # below min_events
    assert {e.type for e in resolved} == {"aos.alert.resolved"} and len(resolved) == 4
    entries = await audit.entries()
    assert [e.action for e in entries] == ["alert.raised"] * 4 + ["alert.resolved"] * 4
    assert raised[2].data["audit_seq"] == entries[2].seq
    assert (await audit.verify()).ok


def test_bad_alert_rules() -> None:
    with pytest.raises(ConfigError, match=r"governance.alerts\[0\].threshold"):
        load_alert_rules([{"id": "x", "kind": "failure_rate", "threshold": 2}])
    with pytest.raises(ConfigError, match="unique"):
        load_alert_rules([{"id": "x", "kind": "agent_failed"}, {"id": "x", "kind": "agent_failed"}])
    AlertEvaluator.from_config(AOSConfig(governance={"alerts": ALERTS}).governance.alerts)


async def test_workers_sharing_the_store_raise_and_resolve_each_alert_once(tmp_path: Path) -> None:
    import asyncio

    from services.storage import SqliteStateStore

    stores = [SqliteStateStore(tmp_path / "state.db") for _ in range(3)]  # three workers, one file
    evaluators = [AlertEvaluator.from_config(ALERTS, clock=ManualClock(), ids=SequentialIds(f"w{n}"), store=store)
                  for n, store in enumerate(stores)]
    bad = HealthSnapshot(agents={"cfo": "Failed"})
    raised = await asyncio.gather(*(e.evaluate(bad) for e in evaluators))  # at the same time
    assert [(e.type, e.subject) for batch in raised for e in batch] == [("aos.alert.raised", "agent-down/cfo")]
    assert await evaluators[2].evaluate(bad) == []  # a worker taking over the timer knows it is active
    resolved = [e for ev in evaluators for e in await ev.evaluate(HealthSnapshot())]
    assert [(e.type, e.subject) for e in resolved] == [("aos.alert.resolved", "agent-down/cfo")]
    for store in stores:
        await store.close()

"""`aos run` (the kernel in-process) and `aos serve`'s bad-setting exit, as subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import cli_env, run_aos


def test_run_feeds_the_events_to_the_kernel_and_prints_what_agents_did(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "aos.json").write_text(json.dumps(
        {"agents": {"instances": [{"type": "tally", "id": "orders", "config": {"subscribe": ["order.*"]}}]}}))
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "order.created", "id": "o-1"}, {"type": "order.paid", "id": "o-2"},
                                  {"type": "order.created", "id": "o-1"}, {"type": "other", "id": "x-1"}]))
    result = run_aos("run", "--events", str(events), "--config", str(config), "--data", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"AOS kernel up: data in {tmp_path / 'data'}, 4 sample events"
    assert [line.split("->")[1].strip() for line in lines[1:5]] == [
        'orders: completed {"total": 1}', 'orders: completed {"total": 2}',
        'seen before, not applied again (first outcome: orders: completed {"total": 1})', "no subscriber"]
    assert lines[5:] == ["Agents:", '  tally/orders       running   {"total": 2, "by_type": {"order.created": 1, '
                                    '"order.paid": 1}}']


def test_run_with_a_bad_events_file_is_exit_2(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text('{"id": "no-type"}')
    result = run_aos("run", "--events", str(events), "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and result.stderr.startswith("aos: 1 validation error for Event type")
    assert len(result.stderr.splitlines()) == 1


def test_serve_with_a_missing_settings_file_is_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run_aos("serve", "--settings", str(missing), "--data", str(tmp_path / "data"), env=cli_env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"aos: settings file {missing} does not exist"

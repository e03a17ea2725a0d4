"""`aos run` (the kernel in-process) and `aos serve`'s bad-setting exit, as subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import cli_env, run_aos
from tests.support.host_process import KEY, HostProcess


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


def test_run_json_prints_one_record_per_event_then_one_line_per_agent(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "aos.json").write_text(json.dumps(
        {"agents": {"instances": [{"type": "tally", "id": "orders", "config": {"subscribe": ["order.*"]}}]}}))
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"type": "order.created", "id": "o-1"}, {"type": "order.created", "id": "o-1"}]))
    result = run_aos("run", "--json", "--events", str(events), "--config", str(config),
                     "--data", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    first, again, agent = (json.loads(line) for line in result.stdout.splitlines())
    assert (first["id"], first["status"], first["repeat"]) == ("o-1", "completed", False)
    assert again["repeat"] is True and again["results"] == first["results"]
    assert agent == {"agent_id": "orders", "type": "tally", "state": "running",
                     "context": {"total": 1, "by_type": {"order.created": 1}}}


def test_run_beside_a_host_on_its_data_folder_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    host = HostProcess(tmp_path, {}, {"agents": {"instances": [{"type": "tally", "id": "counter",
                                                                "config": {"subscribe": ["count.*"]}}]}})
    host.start()
    try:
        before = sorted(p.name for p in host.data.iterdir() if not p.name.endswith(("-wal", "-shm")))
        events = tmp_path / "events.json"
        events.write_text(json.dumps([{"type": "count.up", "id": "c-1"}]))
        result = run_aos("run", "--events", str(events), "--data", str(host.data))
        assert result.returncode == 2
        assert result.stderr.startswith(f"aos: the data folder {host.data} is in use by the local host on "
                                        f"{host.base} (pid {host.proc.pid})")  # type: ignore[union-attr]
        assert "aos send" in result.stderr and len(result.stderr.splitlines()) == 1
        second = run_aos("serve", "--port", "1", "--data", str(host.data), "--settings", str(host.settings_file),
                         env=cli_env())
        assert second.returncode == 2 and "is in use by the local host" in second.stderr
        assert sorted(p.name for p in host.data.iterdir() if not p.name.endswith(("-wal", "-shm"))) == before
        assert httpx.get(f"{host.base}/api/health").status_code == 200  # the host never noticed
        assert httpx.get(f"{host.base}/api/events/c-1", headers={"x-functions-key": KEY}).status_code == 404
    finally:
        host.stop()
    # once the host is gone the folder is free again (also after kill -9: the kernel drops the lock)
    events = tmp_path / "events.json"
    assert run_aos("run", "--events", str(events), "--data", str(host.data)).returncode == 0


def test_version() -> None:
    result = run_aos("--version")
    assert result.returncode == 0 and result.stdout.startswith("aos ") and result.stdout.split()[1][0].isdigit()

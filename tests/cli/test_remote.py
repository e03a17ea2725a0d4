"""`aos send|agents|context|events|audit` against a running `aos serve`: output for people and for scripts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

from tests.cli.conftest import Aos
from tests.support.host_process import MASTER_KEY


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_send_with_wait_prints_each_agents_result(aos: Aos) -> None:
    first = aos("send", "count.order", "--id", "w-1", "--data", '{"sku": 7}', "--subject", "shop", "--wait", "20")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "w-1: completed (count.order, event)"
    assert "  counter: completed {\"total\": " in first.stdout
    assert first.stderr == ""  # no spinner when stderr is not a terminal

    again = _json(aos("send", "count.order", "--id", "w-1", "--wait", "20", "--json"))  # same id: applied once
    assert again["id"] == "w-1" and again["status"] == "completed" and again["type"] == "count.order"
    assert [(r["agent_id"], r["status"]) for r in again["results"]] == [("counter", "completed")]
    shown = _json(aos("events", "show", "w-1", "--json"))
    assert shown["results"] == again["results"]
    assert aos("events", "show", "w-1").stdout.startswith("w-1: completed (count.order, event)\n")


def test_send_without_wait_prints_the_accepted_id(aos: Aos) -> None:
    result = aos("send", "count.later", "--id", "later-1")
    assert (result.returncode, result.stdout.split(":")[0]) == (0, "later-1")
    accepted = _json(aos("send", "count.later", "--id", "later-1", "--json"))
    assert accepted["id"] == "later-1" and accepted["status_url"] == "/api/events/later-1"


def test_a_batch_file_a_direct_message_and_a_topic(aos: Aos, tmp_path: Path) -> None:
    batch = tmp_path / "events.json"
    batch.write_text(json.dumps([{"type": "count.batch", "id": "b-1"}, {"type": "count.batch", "id": "b-2"}]))
    items = _json(aos("send", "--file", str(batch), "--wait", "20", "--json"))["items"]
    assert [(i["id"], i["status"]) for i in items] == [("b-1", "completed"), ("b-2", "completed")]

    message = _json(aos("send", "note.direct", "--to", "counter", "--data", "1", "--wait", "20", "--json"))
    assert message["kind"] == "message" and message["results"][0]["agent_id"] == "counter"

    # The host's events topic: its Service Bus trigger hands the event to the kernel, which records it by id.
    # Posting to a topic takes the host's master key (which also opens the function routes, for --wait).
    topic = aos("send", "count.topic", "--id", "topic-1", "--topic", "agent.events", "--wait", "20", key=MASTER_KEY)
    assert topic.returncode == 0, topic.stderr
    assert topic.stdout.startswith("topic-1: completed (count.topic, event)\n")


def test_wait_that_runs_out_exits_1_and_shows_progress_on_a_terminal(aos: Aos) -> None:
    # A direct message naming no agent is dead-lettered, so the event is never accepted; stderr is a real
    # pseudo-terminal.
    controller, terminal = pty.openpty()
    try:
        result = aos("send", "count.lost", "--id", "lost-1", "--topic", "agent.messages", "--wait", "1",
                     stderr=terminal, key=MASTER_KEY)
        os.close(terminal)
        terminal = -1
        drawn = b""
        while chunk := _read(controller):
            drawn += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert result.returncode == 1
    assert result.stdout == "lost-1: pending\n"
    text = drawn.decode()
    assert "waiting for 1 of 1 event(s)" in text  # the spinner line
    assert "aos: still pending after 1 s: lost-1" in text


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the terminal's other end is closed and drained
        return b""


def test_agents_register_list_show_terminate(aos: Aos) -> None:
    registered = aos("agents", "register", "tally", "doomed", "--subscribe", "doom.*", "--config", '{"limit": 3}')
    assert registered.returncode == 0, registered.stderr
    assert "id:           doomed" in registered.stdout and "type:         tally" in registered.stdout

    listed = aos("agents", "list", "--type", "tally")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "STATE", "LIVE", "CAPABILITIES", "DEPENDS", "ON"]
    assert {row.split()[0] for row in rows} >= {"counter", "doomed"}
    ids = [a["id"] for a in _json(aos("agents", "list", "--capability", "count", "--json"))["agents"]]
    assert {"counter", "doomed"} <= set(ids)

    shown = _json(aos("agents", "show", "doomed", "--json"))
    assert shown["config"] == {"limit": 3, "subscribe": ["doom.*"]}

    unconfirmed = aos("agents", "terminate", "doomed")  # stdin is not a terminal: nobody to ask
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert _json(aos("agents", "show", "doomed", "--json"))["state"] != "terminated"
    assert aos("agents", "terminate", "doomed", "--yes").returncode == 0
    after = aos("agents", "show", "doomed")
    assert "state:        terminated" in after.stdout and "reason:       terminated over HTTP" in after.stdout
    assert "doomed" not in aos("agents", "list", "--state", "running").stdout


def test_context_show(aos: Aos) -> None:
    assert aos("send", "count.ctx", "--wait", "20").returncode == 0
    context = _json(aos("context", "show", "counter", "--json"))
    assert context["state"]["by_type"]["count.ctx"] == 1 and context["version"] >= 1
    human = aos("context", "show", "counter")
    assert human.stdout.startswith(f"agent counter, version {context['version']}\n")
    assert json.loads(human.stdout.split("\n", 1)[1])["by_type"]["count.ctx"] == 1


def test_audit_verify_and_list(aos: Aos) -> None:
    verified = aos("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit chain OK: ")
    assert _json(aos("audit", "verify", "--json"))["ok"] is True

    entries = _json(aos("audit", "list", "--action", "agent.registered", "--json"))["entries"]
    assert entries[0]["subject"] == "agent/counter" and {e["action"] for e in entries} == {"agent.registered"}
    page = aos("audit", "list", "--limit", "1")
    assert page.stdout.splitlines()[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT"]
    assert len(page.stdout.splitlines()) == 2 and page.stderr == "more: aos audit list --after 1\n"

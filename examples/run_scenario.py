"""Run a scenario over the HTTP API of a running AOS and print the conversation and the final state.

Start the app with `make run` in one terminal, then in another:

    .venv/bin/python examples/run_scenario.py                      # examples/scenarios/launch-product-x.json
    .venv/bin/python examples/run_scenario.py my-scenario.json --url http://127.0.0.1:7071 --key KEY

A scenario is a list of steps, each an event to post (`POST /api/events`) and, with `"until": "decision"`,
a wait for the CEO's decision in that event's conversation. The key is found like the `aos` command finds it
(`--key`, `AOS_KEY`, local.settings.json, or the key the local host keeps).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from services.cli.client import Api, path

DEFAULT_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "launch-product-x.json"


def _audit_after(api: Api, seq: int, action: str) -> list[dict[str, Any]]:
    """Every audit entry of `action` after `seq`, a page at a time."""
    entries: list[dict[str, Any]] = []
    while True:
        page = api.get("/api/audit", after=seq, limit=1000, action=action)["entries"]
        entries += page
        if len(page) < 1000:
            return entries
        seq = page[-1]["seq"]


def _summary(result: Any) -> str:
    if not isinstance(result, dict):
        return json.dumps(result)
    keys = ("outcome", "verdict", "status", "chosen", "priority", "reason", "risk_level", "effort_weeks", "risk")
    shown = {k: result[k] for k in keys if result.get(k) is not None}
    return json.dumps(shown or result)[:300]


def _wait_for_decision(api: Api, conversation: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decisions = api.get("/api/decisions", agent_id="ceo", limit=1000)["decisions"]
        found = [d for d in decisions if d["correlation_id"] == conversation]
        if found:
            return found[0]
        time.sleep(0.25)  # polling a running host for the CEO's decision
    raise click.ClickException(f"no CEO decision in conversation {conversation} after {timeout:.0f} s")


def _print_conversation(api: Api, since: int, conversation: str) -> None:
    click.echo("   conversation " + conversation + ":")
    for entry in _audit_after(api, since, "event.accepted"):
        payload = entry["payload"]
        if payload.get("correlationid", entry["subject"].removeprefix("event/")) != conversation:
            continue
        targets = ", ".join(payload.get("targets", [])) or "(no subscriber)"
        click.echo(f"     {payload.get('source', '?'):<18} -> {targets:<22} {payload['type']}")
    decisions = api.get("/api/decisions", limit=1000)["decisions"]
    for decision in sorted((d for d in decisions if d["correlation_id"] == conversation), key=lambda d: d["time"]):
        click.echo(f"   {decision['agent_id']} decided {decision['chosen']!r} on {decision['title']!r} "
                   f"(confidence {decision['confidence']:.2f})")
        click.echo(f"     why: {decision['rationale']}")


def _print_state(api: Api) -> None:
    click.echo("\n== Final state")
    for agent in api.get("/api/agents")["agents"]:
        context = api.get(path("api", "agents", agent["id"], "context"))
        progress = (context.get("state") or {}).get("progress")
        if not progress:
            continue
        goals = "; ".join(f"{g['id']} {g['current']:g}/{g['target']:g}" + ("" if g.get("measured", True)
                                                                           else " (nothing to measure yet)")
                          for g in progress["goals"])
        click.echo(f"   {agent['id']:<4} {agent['state']:<9} goals {progress['percent']}%: {goals}")
    ledger = (api.get("/api/agents/cfo/context").get("state") or {}).get("ledger", {})
    for department, account in sorted(ledger.items()):
        click.echo(f"   ledger {department:<12} spent {account['spent']:>14,.2f} of {account['budget']:>14,.2f} "
                   f"{account['currency']}")
    initiatives = (api.get("/api/agents/ceo/context").get("state") or {}).get("initiatives", {})
    for initiative in initiatives.values():
        if initiative.get("status") == "awaiting_replies":
            missing = sorted({"cfo", "cto"} - set(initiative.get("replies", {})))
            click.echo(f"   pending initiative {initiative['id']}: waiting for {', '.join(missing)} until "
                       f"{initiative.get('deadline_at', '?')} (deadline {initiative.get('reply_deadline', '?')})")
    for risk in api.get("/api/risks", status="open")["risks"]:
        click.echo(f"   open risk {risk['id']}: {risk['title']} (score {risk['score']}, owner {risk['owner']})")
    audit = api.get("/api/audit/verify")
    click.echo(f"   audit chain: {'OK' if audit['ok'] else 'BROKEN'}, {audit['count']} entries")


@click.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEFAULT_SCENARIO)
@click.option("--url", envvar="AOS_URL", default="http://127.0.0.1:7071", show_default=True)
@click.option("--key", envvar="AOS_KEY", default=None, help="function key (default: as the aos command finds it)")
def main(scenario: Path, url: str, key: str | None) -> None:
    """Post each step's event, wait where asked, print the conversation and the final state."""
    plan = json.loads(scenario.read_text(encoding="utf-8"))
    with Api(url, key) as api:  # the `aos` command's client: its key lookup and one-line errors
        _run(api, plan, scenario.stem, url)


def _run(api: Api, plan: dict[str, Any], name: str, url: str) -> None:
    run = uuid.uuid4().hex[:8]
    click.echo(f"Scenario: {plan['name']} (run {run}) against {url}")
    for number, step in enumerate(plan["steps"], 1):
        since = int(api.get("/api/audit/verify")["count"])
        event = {"source": "people/scenario", **step["event"], "id": f"{name}-{number}-{run}"}
        click.echo(f"\n== {number}. {step['say']}")
        answer = api.post("/api/events", event, wait=10)
        conversation = event["id"]
        for result in answer.get("results", []):
            click.echo(f"   {result['agent_id']:<10} {result['status']:<9} "
                       f"{_summary(result.get('result')) if result.get('result') is not None else result.get('error')}")
            if isinstance(result.get("result"), dict) and result["result"].get("conversation"):
                conversation = result["result"]["conversation"]  # an initiative already under way keeps its own
        if step.get("until") == "decision":
            _wait_for_decision(api, conversation)
        _print_conversation(api, since if conversation == event["id"] else 0, conversation)
    _print_state(api)


if __name__ == "__main__":
    sys.exit(main())

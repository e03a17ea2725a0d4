"""`aos agents list|show|register|terminate` and `aos context show`: the agents of a running host."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from services.cli.client import Api, path, remote_command
from services.cli.output import echo_json, fields, table

_SHOWN = ["id", "type", "state", "reason", "restarts", "next_attempt_at", "live", "capabilities", "depends_on",
          "config", "created_at"]


@click.group()
def agents() -> None:
    """The agents of a running host."""


@agents.command("list")
@click.option("--type", "agent_type", help="only agents of this type")
@click.option("--capability", help="only agents with this capability")
@click.option("--state", help="only agents in this lifecycle state (running, sleeping, terminated, failed, ...)")
@remote_command
def list_agents(api: Api, as_json: bool, agent_type: str | None, capability: str | None, state: str | None) -> None:
    """Registered agents, as a table (GET /api/agents)."""
    body = api.get("/api/agents", type=agent_type, capability=capability, state=state)
    if as_json:
        echo_json(body)
        return
    rows = [[a["id"], a["type"], a["state"], "yes" if a.get("live") else "no", ",".join(a.get("capabilities", [])),
             ",".join(a.get("depends_on", []))] for a in body["agents"]]
    if rows:
        table(["ID", "TYPE", "STATE", "LIVE", "CAPABILITIES", "DEPENDS ON"], rows)
    else:
        click.echo("no agents", err=True)


@agents.command("show")
@click.argument("agent_id", metavar="ID")
@remote_command
def show(api: Api, as_json: bool, agent_id: str) -> None:
    """One agent: type, lifecycle state, config, dependencies (GET /api/agents/ID)."""
    _print_agent(api.get(path("api", "agents", agent_id)), as_json)


@agents.command("register")
@click.argument("agent_type", metavar="TYPE")
@click.argument("agent_id", metavar="ID")
@click.option("--config", "config_text", metavar="JSON", help="the agent's config, a JSON object")
@click.option("--depends-on", multiple=True, metavar="ID", help="an agent this one depends on; repeatable")
@click.option("--subscribe", multiple=True, metavar="PATTERN", help="an event type glob it receives; repeatable")
@remote_command
def register(api: Api, as_json: bool, agent_type: str, agent_id: str, config_text: str | None,
             depends_on: Sequence[str], subscribe: Sequence[str]) -> None:
    """Register agent ID of type TYPE (POST /api/agents); the same definition again changes nothing."""
    config: Any = {}
    if config_text is not None:
        try:
            config = json.loads(config_text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON ({exc})", param_hint="--config") from None
        if not isinstance(config, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--config")
    body = {"type": agent_type, "id": agent_id, "config": config, "depends_on": list(depends_on),
            "subscribe": list(subscribe)}
    _print_agent(api.post("/api/agents", body), as_json)


@agents.command("terminate")
@click.argument("agent_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="do not ask; required when not on a terminal")
@remote_command
def terminate(api: Api, as_json: bool, agent_id: str, yes: bool) -> None:
    """Terminate agent ID for good (DELETE /api/agents/ID); asks first unless --yes."""
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not on a terminal, so nobody can confirm: pass --yes")
        click.confirm(f"Terminate agent {agent_id} for good?", abort=True, err=True)
    _print_agent(api.delete(path("api", "agents", agent_id)), as_json)


def _print_agent(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(info)
        return
    shown = dict(info)
    lifecycle = shown.pop("lifecycle", None) or {}
    # Why it is in its state and when it retries; the transition history stays in --json.
    shown |= {k: lifecycle[k] for k in ("reason", "restarts", "next_attempt_at") if lifecycle.get(k)}
    fields(shown, _SHOWN + [k for k in shown if k not in _SHOWN])


@click.group()
def context() -> None:
    """The context (working memory) of perpetual agents."""


@context.command("show")
@click.argument("agent_id", metavar="AGENT")
@remote_command
def show_context(api: Api, as_json: bool, agent_id: str) -> None:
    """AGENT's committed context: its version and state (GET /api/agents/AGENT/context)."""
    body = api.get(path("api", "agents", agent_id, "context"))
    if as_json:
        echo_json(body)
        return
    click.echo(f"agent {body.get('agent_id', agent_id)}, version {body.get('version')}")
    click.echo(json.dumps(body.get("state"), indent=2, sort_keys=True, default=str))

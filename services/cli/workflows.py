"""`aos workflows start|show|raise|terminate`: workflows (Durable orchestrations) on a running host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from services.cli.client import Api, path, remote_command
from services.cli.output import echo_json, fields, table


@click.group()
def workflows() -> None:
    """Workflows of a running host: steps with dependencies, run as Durable orchestrations."""


def _json_option(text: str | None, hint: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint=hint) from None


def _answer(body: Any, as_json: bool, line: str) -> None:
    if as_json:
        echo_json(body)
    else:
        click.echo(line)


@workflows.command("start")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "workflow_id", help="the workflow id; starting the same id again starts nothing new")
@click.option("--input", "input_text", metavar="JSON", help="the workflow's input (replaces the file's)")
@remote_command
def start(api: Api, as_json: bool, definition: Path, workflow_id: str | None, input_text: str | None) -> None:
    """Start the workflow in DEFINITION, a JSON file {"name", "steps", "input"?} (POST /api/workflows)."""
    try:
        body = json.loads(definition.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"cannot read a JSON definition ({exc})", param_hint="DEFINITION") from None
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint="DEFINITION")
    if workflow_id is not None:
        body["id"] = workflow_id
    if input_text is not None:
        body["input"] = _json_option(input_text, "--input")
    accepted = api.post("/api/workflows", body)
    _answer(accepted, as_json, f"{accepted['id']}: {accepted['status']} ({accepted['status_url']})")


@workflows.command("show")
@click.argument("workflow_id", metavar="ID")
@remote_command
def show(api: Api, as_json: bool, workflow_id: str) -> None:
    """A workflow's status, each step's state and its output (GET /api/workflows/ID)."""
    body = api.get(path("api", "workflows", workflow_id))
    if as_json:
        echo_json(body)
        return
    fields({k: v for k, v in body.items() if v is not None}, ["id", "name", "status", "error", "created_at",
                                                              "updated_at"])
    table(["STEP", "STATUS", "ATTEMPTS", "RESULT OR ERROR"],
          [[name, s.get("status"), s.get("attempts") or "", s.get("error") or s.get("result") or ""]
           for name, s in body["steps"].items()])


@workflows.command("raise")
@click.argument("workflow_id", metavar="ID")
@click.argument("name")
@click.option("--data", "data_text", metavar="JSON", help="the event's data")
@remote_command
def raise_event(api: Api, as_json: bool, workflow_id: str, name: str, data_text: str | None) -> None:
    """Raise the external event NAME that a `wait` step of workflow ID waits for."""
    accepted = api.post(path("api", "workflows", workflow_id, "events", name), _json_option(data_text, "--data"))
    _answer(accepted, as_json, f"{workflow_id}: raised {name}")


@workflows.command("terminate")
@click.argument("workflow_id", metavar="ID")
@click.option("--reason", help="why; kept as the workflow's output")
@remote_command
def terminate(api: Api, as_json: bool, workflow_id: str, reason: str | None) -> None:
    """Terminate a running workflow (DELETE /api/workflows/ID)."""
    route = path("api", "workflows", workflow_id)
    accepted = api.request("DELETE", route, params={"reason": reason}).json()
    _answer(accepted, as_json, f"{workflow_id}: {accepted['status']}")

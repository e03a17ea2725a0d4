"""`aos send` (events to the API, an agent or a local topic) and `aos events show`."""

from __future__ import annotations

import json
import time
from typing import IO, Any

import click

from services.cli.client import Api, path, remote_command
from services.cli.output import CliError, Progress, compact, echo_json


def _json_option(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"{what}: not JSON ({exc})") from None


@click.command()
@click.argument("event_type", metavar="[TYPE]", required=False)
@click.option("--data", "data_text", metavar="JSON", help="the event's data, as JSON")
@click.option("--data-file", type=click.File("r"), help="a file ('-' for stdin) holding the data as JSON")
@click.option("--subject", help="the event's subject (a type subscription sends it to the agent of that id)")
@click.option("--id", "event_id", help="the event id [default: one the host assigns]; resending it applies nothing")
@click.option("--correlation-id", help="the conversation the event belongs to")
@click.option("--to", "to_agent", metavar="AGENT", help="a direct message to this agent instead of a routed event")
@click.option("--file", "event_file", type=click.File("r"),
              help="a file ('-' for stdin) of one CloudEvent or an array of them (a batch), instead of TYPE")
@click.option("--topic", help="post to this topic of the local host's Service Bus (e.g. agent.events) instead of the "
                              "API, through its admin route")
@click.option("--wait", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="wait up to this long for the agents, then print the status and each agent's result")
@remote_command
def send(api: Api, as_json: bool, event_type: str | None, data_text: str | None, data_file: IO[str] | None,
         subject: str | None, event_id: str | None, correlation_id: str | None, to_agent: str | None,
         event_file: IO[str] | None, topic: str | None, wait: float | None) -> None:
    """Send an event of TYPE (or the events of --file) and print what the host accepted.

    By default the event goes to POST /api/events and the kernel routes it; with --to AGENT it is a direct
    message (POST /api/agents/AGENT/messages). With --topic it goes to a Service Bus topic of the local host
    (`aos serve`) through POST /admin/servicebus/topics/TOPIC/messages, which needs the host's master key
    (--key, else the one a local host keeps); the topic's trigger then hands it to the app.

    Exit status: 0 accepted (with --wait: every event completed), 1 the host refused it, or an event failed,
    was rejected or is still pending
    or is still pending after --wait, 2 bad input, 3 no host.
    """
    payload = _payload(event_type, data_text, data_file, subject, event_id, correlation_id, to_agent, event_file,
                       topic)
    batch = isinstance(payload, list)
    if topic:
        master = api.master_key()
        accepted = api.post(path("admin", "servicebus", "topics", topic, "messages"), payload,
                            headers={"x-functions-key": master} if master else None)
        items = [{"id": i, "status": f"sent to topic {topic}"} for i in accepted["ids"]]
    else:
        route = path("api", "agents", to_agent, "messages") if to_agent else "/api/events"
        accepted = api.post(route, payload)
        items = accepted["items"] if batch else [accepted]
    ids = [item["id"] for item in items]
    if wait is None:
        if as_json:
            echo_json(accepted)
        else:
            for item in items:
                click.echo(f"{item['id']}: {item['status']}")
        return
    statuses = _wait_for(api, ids, wait, on_topic=bool(topic))
    if as_json:
        echo_json({"items": statuses} if batch or len(statuses) > 1 else statuses[0])
    else:
        for status in statuses:
            describe(status)
    by_status: dict[str, list[str]] = {}
    for status in statuses:
        by_status.setdefault(str(status.get("status")), []).append(status["id"])
    problems = [f"{name}: {', '.join(ids)}" for name, ids in (
        ("still pending after " + f"{wait:g} s", by_status.get("pending", [])),
        ("failed", by_status.get("failed", [])),
        ("rejected as invalid or refused", by_status.get("rejected", []))) if ids]
    if problems:
        raise CliError("; ".join(problems), 1)


def _payload(event_type: str | None, data_text: str | None, data_file: IO[str] | None, subject: str | None,
             event_id: str | None, correlation_id: str | None, to_agent: str | None, event_file: IO[str] | None,
             topic: str | None) -> Any:
    """The request body; conflicting or malformed options are usage errors (exit 2)."""
    if to_agent and topic:
        raise click.UsageError("--to and --topic do not go together: a topic message is routed by the app")
    if event_file is not None:
        extra = [n for n, v in (("TYPE", event_type), ("--data", data_text), ("--data-file", data_file),
                                ("--subject", subject), ("--id", event_id), ("--correlation-id", correlation_id),
                                ("--to", to_agent)) if v]
        if extra:
            raise click.UsageError(f"--file holds whole events: {', '.join(extra)} cannot be added to it")
        return _json_option(event_file.read(), "--file")
    if not event_type:
        raise click.UsageError("give the event TYPE, or --file with CloudEvents")
    if data_text is not None and data_file is not None:
        raise click.UsageError("--data and --data-file do not go together")
    if to_agent and subject:
        raise click.UsageError("--subject does not go with --to: a message's subject is the agent")
    body: dict[str, Any] = {"type": event_type}
    if data_text is not None:
        body["data"] = _json_option(data_text, "--data")
    elif data_file is not None:
        body["data"] = _json_option(data_file.read(), "--data-file")
    for name, value in (("id", event_id), ("subject", subject), ("correlationid", correlation_id)):
        if value:
            body[name] = value
    return body


def _wait_for(api: Api, ids: list[str], wait: float, *, on_topic: bool) -> list[dict[str, Any]]:
    """Poll each event's status until none is pending or `wait` passes; a topic message is 404 until accepted."""
    deadline = time.monotonic() + wait
    statuses: dict[str, dict[str, Any]] = {i: {"id": i, "status": "pending"} for i in ids}
    pause = 0.05
    with Progress(f"waiting for {len(ids)} event(s)") as progress:
        while True:
            for event_id in [i for i, s in statuses.items() if s["status"] == "pending"]:
                response = api.request("GET", path("api", "events", event_id), allow=(404,) if on_topic else ())
                if response.status_code == 200:
                    statuses[event_id] = response.json()
            pending = sum(s["status"] == "pending" for s in statuses.values())
            if not pending or time.monotonic() >= deadline:
                break
            progress.update(f"waiting for {pending} of {len(ids)} event(s)")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.5)  # quick for a local host, gentle on a remote one
    return [statuses[i] for i in ids]


def describe(status: dict[str, Any]) -> None:
    """One line for the event, one per agent result."""
    about = ", ".join(str(status[k]) for k in ("type", "kind") if status.get(k))
    click.echo(f"{status['id']}: {status['status']}" + (f" ({about})" if about else ""))
    for result in status.get("results") or []:
        line = f"  {result['agent_id']}: {result['status']}"
        if result.get("result") is not None:
            line += f" {compact(result['result'])}"
        if result.get("error"):
            line += f" ({result['error']})"
        click.echo(line)
    if status.get("status") == "completed" and not status.get("results"):
        click.echo("  no agent received it")


@click.group()
def events() -> None:
    """Accepted events and their results."""


@events.command("show")
@click.argument("event_id", metavar="ID")
@remote_command
def show_event(api: Api, as_json: bool, event_id: str) -> None:
    """The status of event ID and what each agent did with it (GET /api/events/ID)."""
    status = api.get(path("api", "events", event_id))
    if as_json:
        echo_json(status)
    else:
        describe(status)

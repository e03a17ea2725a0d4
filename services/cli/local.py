"""`aos serve` (the local Functions host) and `aos run` (the kernel in this process, fed sample events)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from services.cli.output import local_errors

_DIR = click.Path(path_type=Path)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(1, 65535), default=7071, show_default=True,
              help="port (as func start)")
@click.option("--data", type=_DIR, default=None,
              help="folder of the SQLite files [default: AOS_DATA_DIR from the settings, else .aos]")
@click.option("--app", default="function_app:app", show_default=True, help="module:attribute of the FunctionApp")
@click.option("--app-dir", type=_DIR, default=Path("."), show_default=True,
              help="folder with the app, host.json and settings")
@click.option("--settings", "settings_file", type=_DIR, default=None,
              help="settings file [default: local.settings.json, else local.settings.json.example]")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True,
              envvar="AOS_DEVHOST__INSTANCES", help="worker processes over one data folder, as Functions instances")
def serve(host: str, port: int, data: Path | None, app: str, app_dir: Path, settings_file: Path | None,
          log_level: str, instances: int) -> None:
    """The local Functions host: serve function_app on 127.0.0.1:7071 over SQLite, until Ctrl-C."""
    from services.devhost.serve import serve as run_host

    click.get_current_context().exit(run_host(host=host, port=port, data=data, app=app, app_dir=app_dir,
                                              settings_file=settings_file, log_level=log_level,
                                              instances=instances))


@click.command()
@click.option("--events", "event_paths", type=click.Path(exists=True, path_type=Path), multiple=True,
              default=[Path("examples/events")], show_default=True,
              help="an event file or a folder of *.json (CloudEvents objects or arrays); repeatable")
@click.option("--config", type=_DIR, default=None, help="config folder [default: AOS_CONFIG_DIR or config/]")
@click.option("--data", type=_DIR, default=None, help="data folder for the SQLite files [default: .aos]")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON line per event (its record), then one per agent (id, type, state, context)")
def run(event_paths: Sequence[Path], config: Path | None, data: Path | None, as_json: bool) -> None:
    """Start the kernel in this process, feed it the events and print what each agent did (no HTTP).

    It owns its data folder while it runs: with a host serving the same folder it refuses to start (send the
    events to the host with `aos send` instead, or pass another --data)."""
    if config:
        os.environ["AOS_CONFIG_DIR"] = str(config)
    with local_errors():
        asyncio.run(_run(event_paths, data, as_json))


def _load_events(paths: Sequence[Path]) -> list[Any]:
    from aos_core.events import Event

    events: list[Event] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            raw = json.loads(file.read_text())
            events.extend(Event.model_validate(item) for item in (raw if isinstance(raw, list) else [raw]))
    return events


async def _run(event_paths: Sequence[Path], data: Path | None, as_json: bool) -> None:
    from aos_core import AgentOperatingSystem, AOSConfig
    from services.devhost.folder_lock import own_data_folder

    events = _load_events(event_paths)  # bad files fail before the kernel starts
    overrides: dict[str, Any] = {"data_dir": data} if data else {}
    config = AOSConfig(**overrides)
    with own_data_folder(Path(config.data_dir), "aos run"):
        aos = AgentOperatingSystem(config)
        await aos.initialize()
        try:
            await _feed(aos, events, as_json)
        finally:
            await aos.shutdown()


async def _feed(aos: Any, events: Sequence[Any], as_json: bool) -> None:
    """Submit each event, wait for the messages agents sent, then show every agent: lines, or JSON lines."""
    from services.cli.output import echo_json

    if not as_json:
        click.echo(f"AOS kernel up: data in {aos.config.data_dir}, {len(events)} sample events")
    for event in events:
        record = await aos.submit(event, actor="aos:run")
        if as_json:
            echo_json({**record.to_dict(), "repeat": record.repeat})
        else:
            click.echo(f"  {event.type:<16} {event.id:<14} -> {_outcome(record)}")
    await aos.run_until_idle()
    if not as_json:
        click.echo("Agents:")
    for info in await aos.list_agents():
        snapshot = await aos.agent_state(info["id"])
        context = snapshot["state"] if snapshot else None
        if as_json:
            echo_json({"agent_id": info["id"], "type": info["type"], "state": info["state"], "context": context})
        else:
            click.echo(f"  {info['type']}/{info['id']:<12} {info['state']:<9} {json.dumps(context)}")


def _outcome(record: Any) -> str:
    outcome = ", ".join(f"{r['agent_id']}: {r['status']}" + (f" {json.dumps(r['result'])}" if r.get("result") else "")
                        + (f" ({r['error']})" if r.get("error") else "") for r in record.results)
    outcome = outcome or "no subscriber"
    if record.repeat:  # the kernel accepts an id once and answers a resend with the first outcome
        outcome = f"seen before, not applied again (first outcome: {outcome})"
    return outcome

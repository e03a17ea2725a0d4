"""The `aos` command.

`aos run` starts the kernel on the embedded default (SQLite under `.aos/`), feeds it the sample events,
and prints what each agent did. `aos serve` is the local Functions host (services/devhost/serve.py) and
`aos send` posts to its local Service Bus topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _load_events(paths: Sequence[Path]) -> list[Any]:
    from aos_core.events import Event

    events: list[Event] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            raw = json.loads(file.read_text())
            events.extend(Event.model_validate(item) for item in (raw if isinstance(raw, list) else [raw]))
    return events


async def _run(args: argparse.Namespace) -> int:
    from aos_core import AgentOperatingSystem, AOSConfig

    if args.config:
        os.environ["AOS_CONFIG_DIR"] = str(args.config)
    overrides: dict[str, Any] = {"data_dir": args.data} if args.data else {}
    aos = AgentOperatingSystem(AOSConfig(**overrides))
    await aos.initialize()
    try:
        events = _load_events(args.events)
        print(f"AOS kernel up: data in {aos.config.data_dir}, {len(events)} sample events")
        for event in events:
            results = await aos.process_event(event)
            outcome = ", ".join(f"{r.agent_id}: {r.status}" + (f" {json.dumps(r.result)}" if r.result else "")
                                + (f" ({r.error})" if r.error else "") for r in results) or "no subscriber"
            print(f"  {event.type:<16} {event.id:<14} -> {outcome}")
        await aos.run_until_idle()
        print("Agents:")
        for info in await aos.list_agents():
            snapshot = await aos.agent_state(info["id"])
            state = snapshot["state"] if snapshot else None
            print(f"  {info['type']}/{info['id']:<12} {info['state']:<9} {json.dumps(state)}")
    finally:
        await aos.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aos", description="Agent Operating System")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the kernel, feed it sample events, print what agents did")
    run.add_argument("--events", type=Path, nargs="*", default=[Path("examples/events")],
                     help="event files or folders of *.json (CloudEvents objects or arrays)")
    run.add_argument("--config", type=Path, default=None, help="config folder (default: AOS_CONFIG_DIR or config/)")
    run.add_argument("--data", type=Path, default=None, help="data folder for the SQLite files (default .aos)")
    from services.devhost import serve

    serve_cmd = commands.add_parser("serve", help="the local Functions host: serve function_app on 127.0.0.1:7071")
    serve.add_serve_arguments(serve_cmd)
    serve_cmd.set_defaults(handler=serve.serve)
    send_cmd = commands.add_parser("send", help="post CloudEvents to a topic of the local Service Bus")
    serve.add_send_arguments(send_cmd)
    send_cmd.set_defaults(handler=serve.send)
    from services.governance.cli import add_parser as add_audit_parser
    add_audit_parser(commands)
    from services.ml.cli import add_parser as add_ml_parser
    add_ml_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "run":
        return asyncio.run(_run(args))
    if getattr(args, "handler", None) is not None:
        return int(args.handler(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())

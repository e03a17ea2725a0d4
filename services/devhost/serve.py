"""Entry points behind `aos serve` and `aos send`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from aos_core.errors import ConfigError


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071, like func start)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the SQLite files (default AOS_DATA_DIR from the settings, else .aos)")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--app-dir", type=Path, default=Path("."), help="folder with the app, host.json and settings")
    parser.add_argument("--settings", type=Path, default=None,
                        help="settings file (default local.settings.json, else local.settings.json.example)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def serve(args: argparse.Namespace) -> int:
    """Load the app, index it once, print its URLs and serve it until interrupted."""
    import uvicorn

    from services.devhost.index import index_functions, load_app
    from services.devhost.server import DevHost, banner
    from services.devhost.settings import load_host_settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app_dir = args.app_dir.resolve()
    try:
        data = args.data.resolve() if args.data else None
        settings = load_host_settings(app_dir, data, host=args.host, port=args.port, settings_file=args.settings)
        functions = index_functions(load_app(args.app, app_dir))
        host = DevHost(functions, settings)
    except ConfigError as exc:
        print(f"aos serve: {exc}", file=sys.stderr)
        return 2
    print(banner(host, settings.sources), flush=True)
    config = uvicorn.Config(host.app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10)
    asyncio.run(uvicorn.Server(config).serve())
    return 0


def add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True, help="topic name, e.g. agent.events")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", dest="payload", help="a CloudEvent JSON object, or an array of them")
    source.add_argument("--file", type=Path, help="a file holding the same")
    parser.add_argument("--data", type=Path, default=None, help="SQLite folder (default AOS_DATA_DIR or .aos)")


def send(args: argparse.Namespace) -> int:
    """Publish to the local bus file; a running host's topic trigger picks the messages up."""
    from pydantic import ValidationError

    from services.devhost.servicebus import publish
    from services.messaging.sqlite_bus import SqliteEventBus

    try:
        payload = json.loads(args.file.read_text() if args.file else args.payload)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"aos send: not JSON: {exc}", file=sys.stderr)
        return 2

    async def run() -> list[str]:
        bus = SqliteEventBus((args.data or Path(os.environ.get("AOS_DATA_DIR") or ".aos")) / "bus.db")
        try:
            return await publish(bus, args.topic, payload)
        finally:
            await bus.close()

    try:
        ids = asyncio.run(run())
    except (ValidationError, ValueError) as exc:
        print(f"aos send: not a CloudEvent (or array of them): {exc}", file=sys.stderr)
        return 2
    for event_id in ids:
        print(f"sent {event_id} to {args.topic}")
    return 0

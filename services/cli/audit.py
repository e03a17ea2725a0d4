"""`aos audit verify` and `aos audit list`: the tamper-evident audit log, over HTTP or from the data folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import click

from services.cli.client import Api, remote_command
from services.cli.output import CliError, Progress, echo_json, local_errors, table


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command()
@click.option("--local", is_flag=True, help="open the audit log of the data folder here instead of asking a host")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="with --local: config folder [default: AOS_CONFIG_DIR or config/]")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="with --local: data folder [default: .aos]")
@remote_command
def verify(api: Api, as_json: bool, local: bool, config: Path | None, data: Path | None) -> None:
    """Verify the whole hash chain; exit 1 naming the first bad entry.

    By default the host checks its own log (GET /api/audit/verify). --local opens the log of a data folder
    the way the app does (HMAC key from the SecretStore), with no host running.
    """
    if not local and (config or data):
        raise click.UsageError("--config and --data go with --local")
    with Progress("verifying the audit chain"):
        if local:
            with local_errors():
                result = asyncio.run(_verify_local(config, data))
        else:
            result = api.get("/api/audit/verify")
    if as_json:
        echo_json(result)
    elif result["ok"]:
        click.echo(f"audit chain OK: {result['count']} entries verified")
    else:
        click.echo(f"audit chain BROKEN at entry {result['first_bad_seq']}: {result['reason']}")
    click.get_current_context().exit(0 if result["ok"] else 1)


async def _verify_local(config_dir: Path | None, data: Path | None) -> dict[str, Any]:
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_audit_log

    if config_dir:
        os.environ["AOS_CONFIG_DIR"] = str(config_dir)
    overrides: dict[str, Any] = {"data_dir": data} if data else {}
    log = await build_audit_log(AOSConfig(**overrides))  # as the app builds it: the HMAC key from the SecretStore
    if log is None:
        raise CliError("no audit log: governance.audit_backend is none", 2)
    try:
        return (await log.verify()).to_dict()
    finally:
        await log.close()


@audit.command("list")
@click.option("--action", help="only entries of this action, e.g. event.accepted")
@click.option("--actor", help="only entries by this actor")
@click.option("--subject", help="only entries about this subject, e.g. agent/orders")
@click.option("--after", type=click.IntRange(0), default=0, show_default=True, help="entries after this seq")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="at most this many")
@remote_command
def list_entries(api: Api, as_json: bool, action: str | None, actor: str | None, subject: str | None, after: int,
                 limit: int) -> None:
    """One page of audit entries, oldest first (GET /api/audit)."""
    body = api.get("/api/audit", action=action, actor=actor, subject=subject, after=after, limit=limit)
    if as_json:
        echo_json(body)
        return
    entries = body["entries"]
    if entries:
        table(["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT"],
              [[e["seq"], e["time"], e["actor"], e["action"], e["subject"]] for e in entries])
    else:
        click.echo("no entries", err=True)
    if body.get("next"):
        click.echo(f"more: aos audit list --after {entries[-1]['seq']}", err=True)

"""The `aos` command: one click group over the local host, a running host's API and the ML tools.

Importing this module loads click and the command modules only; httpx, uvicorn, the kernel and the Azure
SDKs load inside the command that needs them, so `aos --help` and a quick `aos agents list` start fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from services.cli.agents import agents, context
from services.cli.audit import audit
from services.cli.events import events, send
from services.cli.local import run, serve
from services.cli.ml import ml
from services.cli.workflows import workflows


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(None, "-V", "--version", package_name="aos", prog_name="aos", message="%(prog)s %(version)s")
def aos() -> None:
    """Agent Operating System.

    serve and run work in this folder; send, agents, context, events, audit and workflows talk to a running host over
    HTTP (--url, default http://127.0.0.1:7071; the key from --key, AOS_KEY or the local settings); ml works
    on the local adapter registry and Azure ML. Every command that prints results takes --json for scripts
    (one JSON value per line); serve prints the host's log until Ctrl-C.

    Exit status: 0 done, 1 the host or a service refused or failed, 2 bad usage or input, 3 no host.
    """


@click.command()
@click.option("--master", is_flag=True, help="the master key (for /admin and the Durable webhooks)")
def key(master: bool) -> None:
    """Print the key the other commands send (for curl: KEY=$(aos key)); exit 3 when there is none.

    Found like they find it: AOS_KEY, AOS_DEVHOST__FUNCTION_KEY from the environment or local.settings.json,
    else the key the local host generated and keeps in its data folder (AOS_DATA_DIR, default .aos)."""
    from services.cli.client import resolve_key
    from services.cli.output import CliError

    found = resolve_key(None if master else os.environ.get("AOS_KEY"), "master" if master else "function")
    if not found:
        raise CliError("no key found: start the host (make run) in this folder, or set AOS_KEY", 3)
    click.echo(found)


for command in (serve, run, send, agents, context, events, audit, workflows, ml, key):
    aos.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `aos` with `argv` (default: the process arguments) and return the exit status; errors are one line."""
    try:
        result = aos.main(args=list(argv) if argv is not None else None, prog_name="aos", standalone_mode=False)
    except click.UsageError as exc:
        help_hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `aos` or `aos agents`: show the help itself
            exc.show()
            return exc.exit_code
        click.echo(f"aos: {' '.join(exc.format_message().split())}{help_hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aos: aborted", err=True)
        return 1
    return result if isinstance(result, int) else 0

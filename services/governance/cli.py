"""`aos audit verify`: check the whole audit chain and name the first bad entry (exit 1 if broken)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any


async def _verify(args: argparse.Namespace) -> int:
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_audit_log

    if args.config:
        os.environ["AOS_CONFIG_DIR"] = str(args.config)
    overrides: dict[str, Any] = {"data_dir": args.data} if args.data else {}
    config = AOSConfig(**overrides)
    log = await build_audit_log(config)  # as the app builds it: the HMAC key from the SecretStore
    if log is None:
        print("no audit log: governance.audit_backend is none")
        return 2
    try:
        result = await log.verify()
    finally:
        await log.close()
    if args.json:
        print(json.dumps(result.to_dict()))
    elif result.ok:
        print(f"audit chain OK: {result.count} entries verified")
    else:
        print(f"audit chain BROKEN at entry {result.first_bad_seq}: {result.reason}")
    return 0 if result.ok else 1


def run(args: argparse.Namespace) -> int:
    """Entry point the `aos` command calls for `aos audit ...`."""
    return asyncio.run(_verify(args))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `aos audit verify` on the `aos` command's subparsers (sets `handler`, which the `aos` command calls)."""
    audit = subparsers.add_parser("audit", help="inspect the tamper-evident audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = commands.add_parser("verify", help="verify the whole hash chain; exit 1 naming the first bad entry")
    verify.add_argument("--config", type=Path, default=None, help="config folder (default: AOS_CONFIG_DIR or config/)")
    verify.add_argument("--data", type=Path, default=None, help="data folder (default .aos)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=run)
    return audit

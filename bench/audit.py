"""Audit chain benchmark: append throughput to the SQLite log and the time to verify a 10,000-entry chain.

`audit_append_per_s` is entries from concurrent single appends (500 at a time); `audit_append_many_per_s` entries
from concurrent `append_many` batches of 100 (10 at a time, on a log of its own), as the kernel audits the
events of `POST /api/events` batches.

Prints JSON lines, one metric each. `--small` runs 1,000 entries for a quick smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from services.governance.audit import SqliteAuditLog


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}))


async def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for keyed in (False, True):
            log = SqliteAuditLog(Path(folder) / f"audit-{keyed}.db", hmac_key=b"bench-key" if keyed else None)
            payload = {"type": "order.created", "amount": 123.45, "items": [1, 2, 3]}
            start = time.perf_counter()
            # Concurrent appenders, as the kernel has: they group-commit through the one writer thread.
            for chunk in range(0, n, 500):
                await asyncio.gather(*(log.append("kernel", "event.accepted", f"event/{i}", payload)
                                       for i in range(chunk, min(n, chunk + 500))))
            elapsed = time.perf_counter() - start
            label = "hmac" if keyed else "sha256"
            emit("audit_append_per_s", n / elapsed, "entries/s", entries=n, hash=label)
            start = time.perf_counter()
            result = await log.verify()
            elapsed = time.perf_counter() - start
            assert result.ok and result.count == n, result
            emit("audit_verify_ms", elapsed * 1000, "ms", entries=n, hash=label)
            await log.close()
            log = SqliteAuditLog(Path(folder) / f"audit-many-{keyed}.db", hmac_key=b"bench-key" if keyed else None)
            start = time.perf_counter()
            for chunk in range(0, n, 1000):
                await asyncio.gather(*(log.append_many([("kernel", "event.accepted", f"event/{i}", payload)
                                                        for i in range(first, min(n, first + 100))])
                                       for first in range(chunk, min(n, chunk + 1000), 100)))
            elapsed = time.perf_counter() - start
            assert (await log.verify()).count == n
            emit("audit_append_many_per_s", n / elapsed, "entries/s", entries=n, batch=100, hash=label)
            await log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="1,000 entries instead of 10,000")
    args = parser.parse_args()
    asyncio.run(run(1_000 if args.small else 10_000))


if __name__ == "__main__":
    main()

"""The hop of an HTTP function's work to the warm kernel's loop and back. Prints JSON lines; not a test.

  hop_cpu_us              CPU microseconds of the whole process per `with_aos(work)` from another loop, with a
                          `work` that does nothing: what every kernel-bound request pays to cross to the kernel's
                          loop and back (aos_core.runtime.KernelLoop.call)
  threadsafe_hop_cpu_us   the same crossing with `run_coroutine_threadsafe` and `wrap_future`, measured in the same
                          run for comparison
  in_memory_cpu_us        per `with_aos(work, in_memory=True)` once the kernel is warm: no crossing at all (what
                          `GET /api/health` without `ready=1` pays)

The kernel runs on the memory backend in a throwaway data folder; the caller's loop is the main thread's, as the
local host's server loop and the Functions worker's loop are. Each figure is the lowest of five rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 2), "unit": unit, **extra}), flush=True)


async def nothing(aos: Any) -> None:
    return None


async def cpu_per_call(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(calls):
            await call()
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return best


async def main(calls: int) -> None:
    from aos_core import runtime

    await runtime.with_aos(nothing)  # warm
    kernel = runtime.kernel_loop()

    async def threadsafe() -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(nothing(kernel.kernel), kernel.loop))

    emit("hop_cpu_us", await cpu_per_call(lambda: runtime.with_aos(nothing), calls), "us", calls=calls)
    emit("threadsafe_hop_cpu_us", await cpu_per_call(threadsafe, calls), "us", calls=calls)
    emit("in_memory_cpu_us", await cpu_per_call(lambda: runtime.with_aos(nothing, in_memory=True), calls), "us",
         calls=calls)
    runtime.reset_aos()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aos-bench-hop-"))
    (folder / "config").mkdir()
    os.environ.update({"AOS_CONFIG_DIR": str(folder / "config"), "AOS_DATA_DIR": str(folder / "data"),
                       "AOS_STORAGE__BACKEND": "memory"})
    from services.devhost.serve import use_fast_event_loops

    use_fast_event_loops()  # the loops `aos serve` runs on
    asyncio.run(main(300 if args.small else 3000))

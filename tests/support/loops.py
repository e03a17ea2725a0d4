"""Callers on several event loops at once, as the kernel loop, its standby loop and host threads are."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_loops(count: int, work: Callable[[int], Coroutine[Any, Any, T]], timeout: float = 30) -> dict[int, T]:
    """Run `work(n)` for each n in range(count) at once, each in a thread with an event loop of its own; the
    results by n (a caller that did not finish within `timeout` is missing)."""
    results: dict[int, T] = {}

    def run(n: int) -> None:
        results[n] = asyncio.run(work(n))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results

"""Calling one function the way the worker does, with a log line and a record per invocation.

Async functions run on the server's event loop; sync ones in a thread pool, so a slow sync call never blocks
the server. Each call is logged like `func start` logs it: function, invocation id, duration, outcome.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.devhost.index import FunctionSpec
from services.devhost.labels import uuid_text

log = logging.getLogger("aos.devhost")


@dataclass(frozen=True)
class Invocation:
    function: str
    id: str
    started: datetime
    duration_ms: float
    outcome: str  # "Succeeded" | "Failed"
    error: str | None = None


@dataclass(frozen=True)
class InvocationContext:
    """What a function parameter named `context` receives (the worker's `azure.functions.Context`)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = None


class Invoker:
    def __init__(self, executor: ThreadPoolExecutor, *, function_directory: str = ".", history: int = 20) -> None:
        self.executor = executor
        self._directory = function_directory
        # per function: (id bits, started (epoch s), duration (ms), outcome, error) of its last invocations
        self._history: dict[str, deque[tuple[int, float, float, str, str | None]]] = {}
        self._history_size = history
        self.counts: dict[str, dict[str, int]] = {}

    async def invoke(self, spec: FunctionSpec, kwargs: dict[str, Any], *, quiet: bool = False) -> Any:
        """Run `spec.func(**kwargs)`; re-raises what the function raises after logging and recording it."""
        bits = random.getrandbits(128)  # the invocation id, formatted only when someone reads it
        if spec.wants_context:
            kwargs = {**kwargs, "context": InvocationContext(uuid_text(bits), spec.name, self._directory)}
        started, t0 = time.time(), time.perf_counter()
        try:
            if spec.is_async:
                result = await spec.func(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self.executor, functools.partial(spec.func, **kwargs))
        except BaseException as exc:
            self._record(spec.name, bits, started, t0, "Failed", f"{type(exc).__name__}: {exc}", quiet)
            raise
        self._record(spec.name, bits, started, t0, "Succeeded", None, quiet)
        return result

    def _record(self, name: str, bits: int, started: float, t0: float, outcome: str, error: str | None,
                quiet: bool) -> None:
        duration = (time.perf_counter() - t0) * 1000
        history = self._history.get(name)
        if history is None:
            history = self._history[name] = deque(maxlen=self._history_size)
            self.counts[name] = {"Succeeded": 0, "Failed": 0}
        history.appendleft((bits, started, duration, outcome, error))  # an Invocation when read (`recent`)
        self.counts[name][outcome] += 1
        if outcome == "Failed":
            log.warning("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms): %s", name, uuid_text(bits),
                        duration, error)
        elif not quiet:
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", name, uuid_text(bits),
                     duration)

    def recent(self, name: str) -> list[Invocation]:
        """The last invocations of `name`, newest first."""
        return [Invocation(name, uuid_text(bits), datetime.fromtimestamp(started, UTC), round(duration, 2),
                           outcome, error)
                for bits, started, duration, outcome, error in self._history.get(name, ())]

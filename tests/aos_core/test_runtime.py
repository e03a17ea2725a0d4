"""The warm kernel of a Functions worker: built once, on one long-lived loop thread, reachable from anywhere."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aos_core import runtime


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    runtime.reset_aos()


def test_sync_callers_on_many_threads_share_one_kernel_and_one_loop() -> None:
    seen: list[tuple[int, int]] = []

    async def identify(aos: object) -> tuple[int, int]:
        return id(aos), id(asyncio.get_running_loop())

    # Warm first: building the kernel imports modules on its loop, and on a busy machine that can hold the loop
    # past the stall limit, when callers go to the standby loop by design (tested below), not what this tests.
    runtime.get_aos()
    threads = [threading.Thread(target=lambda: seen.append(runtime.run_with_aos(identify))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert seen[0] == (id(runtime.get_aos()), id(runtime.kernel_loop().loop))


async def test_async_callers_reach_the_kernel_loop_from_their_own_loop() -> None:
    async def where(aos: object) -> threading.Thread:
        return threading.current_thread()

    thread = await runtime.with_aos(where)
    assert thread is not threading.current_thread() and thread.name == "aos-kernel"
    # Twice from this loop: the same warm kernel, not a rebuilt one.
    first = await runtime.with_aos(lambda aos: asyncio.sleep(0, aos))
    assert await runtime.with_aos(lambda aos: asyncio.sleep(0, aos)) is first


def test_the_kernel_is_hosted_and_reset_builds_a_new_one_on_the_same_loop() -> None:
    aos = runtime.get_aos()
    assert aos.hosted
    loop = runtime.kernel_loop().loop
    runtime.reset_aos()
    again = runtime.get_aos()
    assert again is not aos and runtime.kernel_loop().loop is loop


def test_a_bad_setting_fails_the_build_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_API__MAX_WAIT", "-1")
    with pytest.raises(Exception, match="AOS_API__MAX_WAIT"):
        runtime.get_aos()


# --- logs on the kernel thread keep the caller's Functions invocation --------------------------------------

# The Python worker's own lookup (azure_functions_worker.dispatcher.get_current_invocation_id): the running
# task's attribute, else the worker thread's thread-local. The worker runs only inside a Functions host, so the
# test installs this copy of its lookup under the worker's module name; the worker's gRPC logging is not run.
_worker_thread_local = threading.local()


def _get_current_invocation_id() -> str | None:
    loop = asyncio._get_running_loop()
    if loop is not None:
        task = asyncio.current_task(loop)
        if task is not None and getattr(task, "__azure_function_invocation_id__", None) is not None:
            return str(task.__azure_function_invocation_id__)
    return getattr(_worker_thread_local, "invocation_id", None)


class _WorkerLogHandler(logging.Handler):
    """Records each message with the invocation id the worker would send it under (as its on_logging does)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str | None, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.getMessage(), _get_current_invocation_id(), threading.current_thread().name))


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[_WorkerLogHandler]:
    module = types.ModuleType("azure_functions_worker.dispatcher")
    module.get_current_invocation_id = _get_current_invocation_id  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure_functions_worker.dispatcher", module)
    handler = _WorkerLogHandler()
    logger = logging.getLogger("aos")
    level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not an attribute: it also clears the loggers' level caches
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_sync_invocation_keeps_its_id_on_logs_the_kernel_writes(worker: _WorkerLogHandler) -> None:
    def sync_function() -> None:  # what the worker does around a sync function on its thread pool
        _worker_thread_local.invocation_id = "inv-sync"
        try:
            runtime.get_aos()
        finally:
            _worker_thread_local.invocation_id = None

    thread = threading.Thread(target=sync_function)
    thread.start()
    thread.join()
    warm = [r for r in worker.records if r[0].startswith("AOS kernel warm")]
    assert warm == [(warm[0][0], "inv-sync", "aos-kernel")]


def test_concurrent_invocations_each_keep_their_own_id(worker: _WorkerLogHandler) -> None:
    runtime.get_aos()
    log = logging.getLogger("aos.test")
    both = threading.Barrier(2)

    async def handle(aos: object) -> None:
        log.info("before %s", _get_current_invocation_id())
        await asyncio.sleep(0.05)  # the two invocations interleave on the one kernel loop
        log.info("after")

    def invocation(invocation_id: str) -> None:
        _worker_thread_local.invocation_id = invocation_id
        both.wait(10)
        runtime.run_with_aos(handle)

    threads = [threading.Thread(target=invocation, args=(f"inv-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    before = {message.split()[1]: tag for message, tag, _ in worker.records if message.startswith("before")}
    assert before == {"inv-0": "inv-0", "inv-1": "inv-1"}
    assert sorted(tag for message, tag, _ in worker.records if message == "after") == ["inv-0", "inv-1"]


async def test_an_async_invocation_keeps_its_id_and_its_trace_context(
        worker: _WorkerLogHandler, span_exporter: Any) -> None:
    from opentelemetry import trace

    from services.observability import tracing

    asyncio.current_task().__azure_function_invocation_id__ = "inv-async"  # type: ignore[union-attr]

    async def work(aos: object) -> int:
        logging.getLogger("aos.test").info("on the kernel")
        return trace.get_current_span().get_span_context().trace_id

    with tracing.span("invocation") as span:
        trace_id = await runtime.with_aos(work)
    assert trace_id == span.get_span_context().trace_id
    assert ("on the kernel", "inv-async", "aos-kernel") in worker.records


def test_outside_a_functions_worker_nothing_is_tagged() -> None:
    assert "azure_functions_worker.dispatcher" not in sys.modules
    assert runtime.caller_invocation_id() is None
    assert runtime.run_with_aos(lambda aos: asyncio.sleep(0, "ok")) == "ok"


async def test_a_server_without_a_store_uses_the_kernel_initialized_in_its_own_context(tmp_path: Path) -> None:
    # No process-wide default: two kernels started in two tasks each hand their own store to the servers
    # created there, and after a kernel shuts down nothing keeps pointing at its store.
    from aos_core.config import AOSConfig
    from aos_core.kernel import AgentOperatingSystem
    from aos_core.runtime import context_store
    from services.context import ContextMCPServer

    async def kernel_and_server(name: str) -> tuple[object, object]:
        aos = AgentOperatingSystem(AOSConfig(storage={"backend": "memory"}, data_dir=tmp_path / name))
        await aos.initialize()
        await asyncio.sleep(0)  # let the other task initialize its kernel meanwhile
        server = ContextMCPServer("probe")
        await server.initialize()
        stores = (aos.store, server.store)
        await aos.shutdown()
        assert context_store() is None
        return stores

    (store_a, server_a), (store_b, server_b) = await asyncio.gather(kernel_and_server("a"), kernel_and_server("b"))
    assert server_a is store_a and server_b is store_b and store_a is not store_b
    assert context_store() is None  # the tasks' contexts were their own


# --- the hop from the caller's loop to the kernel loop ------------------------------------------------------


async def test_cancelling_the_caller_cancels_its_work_on_the_kernel_loop() -> None:
    await runtime.with_aos(lambda aos: asyncio.sleep(0))  # warm
    started, outcome = threading.Event(), []

    async def long_work(aos: object) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled on " + threading.current_thread().name)
            raise

    caller = asyncio.create_task(runtime.with_aos(long_work))
    assert await asyncio.to_thread(started.wait, 10)  # the kernel loop runs it
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(100):
        if outcome:
            break
        await asyncio.sleep(0.01)  # the cancellation crosses to the kernel loop
    assert outcome == ["cancelled on aos-kernel"]


async def test_errors_cross_back_to_the_caller_as_raised() -> None:
    async def failing(aos: object) -> None:
        raise LookupError("from the kernel loop")

    with pytest.raises(LookupError, match="from the kernel loop"):
        await runtime.with_aos(failing)


async def test_work_the_held_kernel_loop_does_not_start_runs_once_on_the_standby_loop() -> None:
    await runtime.with_aos(lambda aos: asyncio.sleep(0))  # warm
    ran: list[str] = []

    async def hold(aos: object) -> None:
        time.sleep(1.5)  # noqa: ASYNC251  (a handler that blocks its loop)

    async def work(aos: object) -> str:
        ran.append(threading.current_thread().name)
        return threading.current_thread().name

    holder = asyncio.create_task(runtime.with_aos(hold))
    await asyncio.sleep(0.1)  # the kernel loop is now held
    began = time.monotonic()
    assert await runtime.with_aos(work) == "aos-kernel-standby"
    assert time.monotonic() - began < 1.0  # it did not wait for the held loop
    await holder
    await runtime.with_aos(lambda aos: asyncio.sleep(0.1))  # the kernel loop turns again
    assert ran == ["aos-kernel-standby"]  # and never ran the given-up work as well


async def test_in_memory_work_runs_on_the_callers_loop_even_while_the_kernel_loop_is_held() -> None:
    async def where(aos: object) -> str:
        return threading.current_thread().name

    here = threading.current_thread().name
    assert await runtime.with_aos(where, in_memory=True) == "aos-kernel"  # not warm yet: warmed there first
    assert await runtime.with_aos(where, in_memory=True) == here

    async def hold(aos: object) -> None:
        time.sleep(1.0)  # noqa: ASYNC251  (a handler that blocks its loop)

    holder = asyncio.create_task(runtime.with_aos(hold))
    await asyncio.sleep(0.1)
    began = time.monotonic()
    assert await runtime.with_aos(where, in_memory=True) == here
    assert time.monotonic() - began < 0.1
    await holder


_GC_PROBE = """
import gc, json
from aos_core import runtime
before = gc.get_threshold()
runtime.get_aos()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


@pytest.mark.parametrize("setting", [None, "0"])
def test_a_worker_whose_kernel_is_warm_sets_its_garbage_collector_for_a_server(
        setting: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a process of its own: the collector's settings are the whole process's.
    import json
    import subprocess

    if setting is None:
        monkeypatch.delenv("AOS_DISPATCH__GC_THRESHOLD", raising=False)  # the default a deployment runs with
    else:
        monkeypatch.setenv("AOS_DISPATCH__GC_THRESHOLD", setting)
    out = subprocess.run([sys.executable, "-c", _GC_PROBE], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == [700, 10, 10]  # Python's defaults until the kernel is warm
    if setting is None:
        assert seen["after"] == [200_000, 20, 20] and seen["frozen"] > 1000  # the modules and the kernel, frozen
    else:
        assert seen["after"] == [700, 10, 10] and seen["frozen"] == 0

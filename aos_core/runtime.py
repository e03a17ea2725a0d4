"""The composition root: the one place that picks adapters from config and knows `services` and `agents`.

Everything here imports adapters lazily, inside the function that needs them, so importing `aos_core`
(and `function_app`) stays cheap and loads no cloud SDK.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aos_core.config import AOSConfig
from aos_core.errors import ConfigError
from aos_core.events import Event
from aos_core.gc_tuning import tune_for_server
from aos_core.ports import (
    AuditLog,
    Clock,
    Dispatcher,
    EventBus,
    IdempotencyKeys,
    IdFactory,
    Policy,
    SecretStore,
    StateStore,
    Telemetry,
)

if TYPE_CHECKING:
    from aos_core.kernel import AgentOperatingSystem

ENTRY_POINT_GROUP = "aos.agents"
T = TypeVar("T")
log = logging.getLogger("aos.runtime")


# The store of the kernel initialized in this async context (the task that awaited `initialize()` and the work it
# starts): what an object created there without a store, such as `ContextMCPServer(agent_id)`, reads and writes.
# Context-local, so two kernels in two tasks never see each other's.
_context_store: ContextVar[StateStore | None] = ContextVar("aos_context_store", default=None)


def use_context_store(store: StateStore | None) -> None:
    """Make `store` the one objects created in this context without a store use (the kernel, at initialize)."""
    _context_store.set(store)


def context_store() -> StateStore | None:
    """The store of the kernel initialized in this context, if any."""
    return _context_store.get()


async def build_state_store(config: AOSConfig) -> StateStore:
    backend = config.storage.backend
    if backend == "sqlite":
        from services.storage import SqliteStateStore

        return SqliteStateStore(config.storage_path())
    if backend == "memory":
        from services.storage import InMemoryStateStore

        return InMemoryStateStore()
    if backend == "azure":
        # Resolved now, so a missing or bad connection setting fails at start and names the setting.
        from services.storage.blob import BlobStateStore
        from services.storage.connections import resolve_storage_connection

        return BlobStateStore(resolve_storage_connection(config.storage.connection))
    if backend == "cosmos":
        from services.storage.connections import resolve_cosmos_connection
        from services.storage.cosmos import CosmosStateStore

        connection = resolve_cosmos_connection(config.storage.cosmos_connection)
        return CosmosStateStore(connection, database=config.storage.cosmos_database)
    raise ConfigError(f"storage.backend: {backend!r} is not available (use 'sqlite', 'memory', 'azure' or 'cosmos')")


def build_knowledge_base(config: AOSConfig, store: StateStore) -> Any:
    """The knowledge base: a SQLite FTS5 file in the data folder (embedded), or, on the Azure backends, documents
    in `store` with a search index per instance (an instance's files do not survive scale-in)."""
    if config.storage.backend in ("azure", "cosmos"):
        from services.knowledge.stored import StoredKnowledgeBase

        return StoredKnowledgeBase(store)
    from services.knowledge import KnowledgeBase

    return KnowledgeBase(":memory:" if config.storage.backend == "memory" else Path(config.data_dir) / "knowledge.db")


async def build_event_bus(config: AOSConfig, clock: Clock | None = None) -> EventBus:
    backend = config.messaging.backend
    if backend == "sqlite":
        from services.messaging import SqliteEventBus

        return SqliteEventBus(config.bus_path(), clock=clock)
    if backend == "servicebus":
        from services.messaging.servicebus import ServiceBusEventBus
        from services.storage.connections import resolve_servicebus_connection

        return ServiceBusEventBus(resolve_servicebus_connection(config.messaging.connection))
    raise ConfigError(f"messaging.backend: {backend!r} is not available (use 'sqlite' or 'servicebus')")


def build_secret_store(config: AOSConfig) -> SecretStore:
    """Secrets from the environment first, then Key Vault when `keyvault.url` (AOS_KEYVAULT__URL) is set."""
    from services.secrets import build_secret_store as build

    return build(config.keyvault.url, client_id=config.keyvault.client_id)


async def build_audit_log(config: AOSConfig, clock: Clock | None = None) -> AuditLog | None:
    """The audit log `governance.audit_backend` selects (None for "none"); its HMAC key from the SecretStore."""
    if config.governance.audit_backend == "none":
        return None
    from services.governance.factory import open_audit_log

    secrets = build_secret_store(config) if config.governance.audit_hmac_secret else None
    return await open_audit_log(config, secrets=secrets, clock=clock)


def build_policy(config: AOSConfig, clock: Clock, audit: AuditLog | None, store: StateStore | None = None
                 ) -> Policy | None:
    """The rules of `governance.policies`, or None when there are none (nothing to evaluate); rate limits count
    in `store`, shared by every worker."""
    if not config.governance.policies:
        return None
    from services.governance.policy import PolicyEngine

    return PolicyEngine.from_config(config.governance.policies, clock=clock, audit=audit, store=store)


def build_alerts(config: AOSConfig, audit: AuditLog | None, clock: Clock, ids: IdFactory,
                 store: StateStore | None = None) -> Callable[[Any], Awaitable[list[Event]]] | None:
    """The alert pass the timer runs (`governance.alerts` rules), or None without rules; which alerts are
    active is kept in `store`, shared by every worker."""
    if not config.governance.alerts:
        return None
    from services.observability.alerts import AlertEvaluator, KernelAlerts

    return KernelAlerts(AlertEvaluator.from_config(config.governance.alerts, audit=audit, clock=clock, ids=ids,
                                                   store=store))


def build_idempotency(config: AOSConfig, store: StateStore, clock: Clock) -> IdempotencyKeys:
    from services.reliability.idempotency import IdempotencyStore

    return IdempotencyStore(store, clock=clock, ttl=config.governance.idempotency_ttl)


def build_telemetry(config: AOSConfig) -> Telemetry:
    """OpenTelemetry hooks, exporting where the environment says (Application Insights, OTLP, or nowhere)."""
    from services.observability.kernel_hooks import OpenTelemetryHooks
    from services.observability.telemetry import configure_telemetry

    configure_telemetry(config)
    return OpenTelemetryHooks()


def build_entity_dispatcher() -> Dispatcher:
    """Perpetual agents' mailboxes on a Functions host: their Durable entities."""
    from services.dispatch import DurableEntityDispatcher

    return DurableEntityDispatcher()


def build_orchestrations(store: Any, dispatcher: Any) -> Any:
    """Workflows agents start, on a Functions host: the `aos_workflow` Durable orchestration."""
    from services.workflows.starter import DurableOrchestrations

    return DurableOrchestrations(store, dispatcher)


def build_breakers() -> Any:
    """The kernel's circuit breakers, one per dependency name (services.reliability.BreakerRegistry)."""
    from services.reliability import BreakerRegistry

    return BreakerRegistry()


def build_reasoner(config: AOSConfig, clock: Clock | None = None, breakers: Any = None) -> Any:
    """The reasoner `ml` settings ask for, behind its cache; its API key from the SecretStore when one is named."""
    from services.ml.factory import build_reasoner as build

    secrets = build_secret_store(config) if config.ml.api_key_secret else None
    return build(config.ml, secrets=secrets, clock=clock, breakers=breakers)


def builtin_agent_types() -> Iterator[tuple[str, Any]]:
    """The agent classes shipped in `agents/` (agents.builtin), known without any install step."""
    from agents.builtin import BUILTIN_TYPES

    for name, path in BUILTIN_TYPES.items():
        yield name, import_agent_type(path)


def entry_point_agent_types() -> Iterator[tuple[str, Any]]:
    """Agent classes that installed packages publish under the `aos.agents` entry point group."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        yield entry.name, entry.load()


def import_agent_type(path: str) -> Any:
    """Load `package.module:ClassName` (from `agents.types` in config)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        raise ConfigError(f"agents.types: {path!r} must look like 'package.module:ClassName'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"agents.types: cannot load {path!r}: {exc}") from exc


# --- the warm kernel of a Functions worker -----------------------------------------------------------

# The Azure Functions Python worker tags each log record with the invocation it belongs to: it reads the
# attribute below from the running asyncio task (async functions, on its loop), else a thread-local of the
# worker thread (sync functions). The kernel loop is neither, so each piece of work handed to it carries the
# caller's invocation id on its own task; logs written there ("AOS kernel warm", "agent ... registered") stay
# tied to the invocation in Application Insights. The worker is looked up, never imported: it exists only
# inside a Functions worker process. OpenTelemetry's context needs nothing extra: it is a contextvar, and
# `run_coroutine_threadsafe` runs the work in a copy of the caller's context.
_WORKER_MODULE = "azure_functions_worker.dispatcher"
_TASK_INVOCATION_ID = "__azure_function_invocation_id__"


def caller_invocation_id() -> str | None:
    """The Functions invocation the calling thread or task is running, as the Python worker tracks it."""
    lookup = getattr(sys.modules.get(_WORKER_MODULE), "get_current_invocation_id", None)
    return lookup() if lookup is not None else None


async def _in_invocation(work: Coroutine[Any, Any, T], invocation_id: str | None) -> T:
    task = asyncio.current_task()
    if invocation_id is not None and task is not None:
        setattr(task, _TASK_INVOCATION_ID, invocation_id)
    return await work


class KernelLoop:
    """One event loop on a daemon thread that owns a warm kernel and everything it opened.

    Functions calls sync functions (entities) on worker threads and async ones on its own loop; both reach
    the kernel here, so its storage connections, locks and background loops live on one loop for the whole
    life of the worker process instead of a new loop per call.
    """

    def __init__(self, name: str = "aos-kernel") -> None:
        self.loop = asyncio.new_event_loop()
        self.kernel: AgentOperatingSystem | None = None
        self._warm_lock: asyncio.Lock | None = None  # created on this loop
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self.loop.call_soon_threadsafe(self._heartbeat)

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        self.loop.call_later(_STALL_AFTER / 4, self._heartbeat)

    def responsive(self) -> bool:
        """False while something holds the loop (a handler that blocks it): new work should go elsewhere."""
        return time.monotonic() - self._beat < _STALL_AFTER

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(_in_invocation(work, caller_invocation_id()), self.loop)

    def run(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `work` on the kernel loop and block this (non-kernel) thread until it is done."""
        if self.in_loop():
            work.close()
            raise RuntimeError("KernelLoop.run called from the kernel loop itself; await the coroutine instead")
        return self.submit(work).result(timeout)

    async def call(self, work: Callable[[AgentOperatingSystem], Awaitable[T]], *, give_up_after: float | None = None
                   ) -> T:
        """Await `work(aos)` with this loop's warm kernel, on this loop, from another loop.

        One callback to this loop starts it, one back to the caller's loop hands over its outcome; the work runs
        in a copy of the caller's context (OpenTelemetry's included) and task, tagged with its invocation id.
        (`run_coroutine_threadsafe` and `wrap_future` cost three times as much: a concurrent future with its
        condition, chained to two asyncio futures.) Cancelling the caller cancels the work. Unless this loop
        starts the work within `give_up_after` seconds, the call gives up: _GivenUp, and the work never runs.
        """
        if self.in_loop():
            return await _with_kernel(self, work)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        claim = _Claim()
        invocation_id = caller_invocation_id()
        running: list[asyncio.Task[T]] = []

        def start() -> None:  # on this loop
            if not claim.start():
                return  # given up: never run it twice
            task = self.loop.create_task(_with_kernel(self, work))
            if invocation_id is not None:
                setattr(task, _TASK_INVOCATION_ID, invocation_id)
            task.add_done_callback(lambda finished: _back(loop, finished, done))
            running.append(task)

        def stalled() -> None:  # on the caller's loop
            if claim.give_up() and not done.done():
                done.set_exception(_GivenUp())

        self.loop.call_soon_threadsafe(start)
        timer = loop.call_later(give_up_after, stalled) if give_up_after is not None else None
        try:
            return await done
        except asyncio.CancelledError:
            if not claim.give_up():  # it started (or is starting): this loop runs `start` to its end first
                self.loop.call_soon_threadsafe(lambda: running[0].cancel())
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def warm(self) -> AgentOperatingSystem:
        """This loop's kernel, built from settings on first use (runs on this loop only)."""
        if self.kernel is not None:
            return self.kernel
        if self._warm_lock is None:
            self._warm_lock = asyncio.Lock()
        async with self._warm_lock:
            if self.kernel is None:
                from aos_core.kernel import AgentOperatingSystem

                config = AOSConfig()
                aos = AgentOperatingSystem(config, hosted=True, remote=build_entity_dispatcher(),
                                           telemetry=build_telemetry(config))
                await aos.initialize()
                aos.orchestrations = build_orchestrations(aos.store, aos.remote)
                tune_for_server(config.dispatch.gc_threshold)  # a worker process: modules and kernel are here
                self.kernel = aos
                log.info("AOS kernel warm on %s (storage %s, messaging %s)", self._thread.name,
                         aos.config.storage.backend, aos.config.messaging.backend)
        return self.kernel

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


# A handler that blocks its loop (a sync call, time.sleep) cannot be preempted. So that one agent cannot stop
# the worker, work that the kernel loop does not start within _STALL_AFTER goes to a standby loop with a
# kernel of its own. Both share only storage, like two instances; entities keep one operation per agent at a
# time, ETags and the durable event records keep every guarantee across them.
_STALL_AFTER = 0.3
_kernel_loops: list[KernelLoop] = []  # [the kernel loop, the standby one once needed]
_kernel_loop_lock = threading.Lock()


def kernel_loop() -> KernelLoop:
    with _kernel_loop_lock:
        if not _kernel_loops:
            _kernel_loops.append(KernelLoop())
        return _kernel_loops[0]


def _standby_loop() -> KernelLoop:
    with _kernel_loop_lock:
        if len(_kernel_loops) < 2:
            _kernel_loops.append(KernelLoop("aos-kernel-standby"))
        return _kernel_loops[1]


class _Claim:
    """Which loop runs a piece of work: the one that starts it, unless the caller gave up waiting for it.
    A caller that blocks its thread until the work starts asks for `started`, an event set on start."""

    def __init__(self, *, signal: bool = False) -> None:
        self._lock = threading.Lock()
        self._state = "waiting"
        self.started = threading.Event() if signal else None

    def start(self) -> bool:
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "started"
        if self.started is not None:
            self.started.set()
        return True

    def give_up(self) -> bool:
        with self._lock:
            if self._state == "started":
                return False
            self._state = "given up"
            return True


class _GivenUp(Exception):
    pass


async def _claimed(kernel: KernelLoop, claim: _Claim, work: Callable[[AgentOperatingSystem], Awaitable[T]]) -> T:
    if not claim.start():
        raise _GivenUp  # the caller took it to the standby loop; never run it twice
    return await work(await kernel.warm())


async def _with_kernel(kernel: KernelLoop, work: Callable[[AgentOperatingSystem], Awaitable[T]]) -> T:
    return await work(await kernel.warm())


def _back(loop: asyncio.AbstractEventLoop, task: asyncio.Task[T], done: asyncio.Future[T]) -> None:
    # On the kernel loop: the outcome goes back to the caller's loop, unless that loop is gone (nobody waits).
    if loop.is_closed():
        if not task.cancelled():
            task.exception()  # retrieved: nobody is left to raise it to
        return
    loop.call_soon_threadsafe(_hand_over, task, done)


def _hand_over(task: asyncio.Task[T], done: asyncio.Future[T]) -> None:
    # On the caller's loop: the work's outcome becomes the caller's (unless the caller has stopped waiting).
    if done.done():
        if not task.cancelled():
            task.exception()  # retrieved: nobody is left to raise it to
        return
    if task.cancelled():
        done.cancel()
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(task.result())


def get_aos() -> AgentOperatingSystem:
    """The worker's kernel, built from settings on first use and kept warm. Blocks; call from a sync context."""
    primary = kernel_loop()
    return primary.run(primary.warm())


async def with_aos(work: Callable[[AgentOperatingSystem], Awaitable[T]], *, in_memory: bool = False) -> T:
    """Run `work(aos)` on the kernel loop with the warm kernel, from any thread or loop; on the standby
    loop when the kernel loop is held (see _STALL_AFTER).

    `in_memory` promises that `work` only reads facts the kernel keeps in memory and that are safe to read from
    any thread (the health route's counts): once the kernel is warm, it runs right here on the caller's loop,
    with no hop to the kernel loop and back, and no wait while a handler holds that loop.
    """
    primary = kernel_loop()
    if in_memory and primary.kernel is not None:
        return await work(primary.kernel)
    if primary.in_loop():
        return await work(await primary.warm())
    if primary.responsive():
        with contextlib.suppress(_GivenUp):
            return await primary.call(work, give_up_after=_STALL_AFTER)
    standby = _standby_loop()
    if standby.in_loop():
        return await work(await standby.warm())
    return await standby.call(work)


def run_with_aos(work: Callable[[AgentOperatingSystem], Awaitable[T]], timeout: float | None = None) -> T:
    """`with_aos` for sync callers (Durable entity functions run on worker threads)."""
    primary = kernel_loop()
    if primary.responsive():
        claim = _Claim(signal=True)
        future = primary.submit(_claimed(primary, claim, work))
        if (claim.started is not None and claim.started.wait(_STALL_AFTER)) or not claim.give_up():
            return future.result(timeout)
        future.cancel()
    standby = _standby_loop()
    return standby.run(_claimed(standby, _Claim(), work), timeout)


def reset_aos() -> None:
    """Shut the warm kernels down; the next call builds a new one from the settings of that moment.

    The loop threads stay: clients created on them (the Durable SDK's shared HTTP session) remain valid.
    """
    with _kernel_loop_lock:
        loops = list(_kernel_loops)
    for kernel in loops:
        aos, kernel.kernel = kernel.kernel, None
        if aos is not None:
            kernel.run(aos.shutdown(), timeout=30)

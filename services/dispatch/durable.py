"""Perpetual agents as Durable entities: the Dispatcher that signals them and the body of the `agent` entity.

Every perpetual agent is the entity `agent/<agent id>`: Durable runs one operation at a time per key, which
is the agent's serial mailbox, and gives it a persistent identity wherever the worker runs. The entity's own
state is small (identity, lifecycle, version, recent event ids); the agent's working memory is its
ContextMCPServer document, committed with the event id in the same write, so a redelivered signal is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from aos_core.batches import Batcher
from aos_core.errors import AgentUnavailableError, StorageUnavailableError, outage_pauses
from aos_core.events import AgentId, Event
from aos_core.ports import AgentResult
from aos_core.telemetry import SPAN_ENTITY

T = TypeVar("T")
ENTITY_NAME = "agent"
_QUERY_TIMEOUT = 60.0  # seconds the status and terminate operations may wait for the kernel
log = logging.getLogger("aos.dispatch")
_client: ContextVar[tuple[Any, asyncio.AbstractEventLoop | None] | None] = ContextVar("aos_durable_client",
                                                                                  default=None)


@contextlib.contextmanager
def durable_client(client: Any) -> Iterator[None]:
    """Make `client` (the `DurableOrchestrationClient` of a `durable_client_input` binding) the one that work
    started inside this block signals entities with; it follows the work onto the kernel's loop."""
    try:  # the loop the function runs on: the SDK's HTTP session belongs to it, and no handler ever holds it
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    token = _client.set((client, loop) if client is not None else None)
    try:
        yield
    finally:
        _client.reset(token)


def fresh_durable_http_session() -> None:
    """Let azure-functions-durable make a new HTTP session if its one belongs to another or a closed loop.

    The SDK keeps one aiohttp session per process, bound to the loop that first used it. A Functions worker
    has one loop for life; a host started again in one process (tests) has a new one.
    """
    with contextlib.suppress(ImportError):
        from azure.durable_functions.models.utils import http_utils

        session = http_utils._client_session
        loop = getattr(session, "_loop", None)
        if session is None or session.closed or (loop is asyncio.get_running_loop() and not loop.is_closed()):
            return
        http_utils._client_session = None
        http_utils._session_lock = asyncio.Lock()


async def close_durable_http_session() -> None:
    """Close the SDK's HTTP session if it belongs to this loop (a host shutting down)."""
    with contextlib.suppress(ImportError):
        from azure.durable_functions.models.utils import http_utils

        session = http_utils._client_session
        if session is not None and getattr(session, "_loop", None) is asyncio.get_running_loop():
            await http_utils._close_session()


async def _on_this_loop(call: Awaitable[T]) -> T:
    fresh_durable_http_session()
    return await call


def current_binding() -> tuple[Any, asyncio.AbstractEventLoop | None] | None:
    """The Durable client of the invocation this work belongs to (see `durable_client`), if any."""
    return _client.get()


async def call_client(binding: tuple[Any, asyncio.AbstractEventLoop | None], call: Callable[[Any], Awaitable[T]]
                      ) -> T:
    """Run `call(client)` on the loop the client's invocation runs on (its HTTP session belongs there)."""
    client, loop = binding
    work = _on_this_loop(call(client))
    if loop is None or loop.is_closed() or loop is asyncio.get_running_loop():
        return await work
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))  # from a kernel loop


class DurableEntityDispatcher:
    """Dispatcher port on Durable Functions: `deliver` signals the agent's entity and returns `accepted`.

    The kernel of a hosted worker is composed with this dispatcher, so every perpetual agent is reached through
    its entity from the first event on, whatever the trigger. The client comes with the invocation
    (`durable_client`); work no trigger started (a workflow step, a recovery) uses the last one seen, since a
    worker's Durable endpoint does not change.

    Signals to one entity go out one at a time: events handed to an agent while its last signal is in flight
    wait and go together in the next one (`deliver` takes one event or a list), so under load one signal carries
    many events, and an event already on its way is not signalled a second time.
    """

    def __init__(self) -> None:
        self._last: Any = None
        self._signals: Batcher[str, Event, AgentResult] = Batcher(self._signal, identity=lambda event: event.id)

    async def deliver(self, agent_id: AgentId, event: Event) -> AgentResult:
        return (await self.deliver_many(agent_id, [event]))[0]

    async def deliver_many(self, agent_id: AgentId, events: list[Event]) -> list[AgentResult]:
        """Hand `events` to the agent's entity, in order; AgentUnavailableError if they could not be (they stay
        pending, and a resend with the same ids signals again)."""
        binding = _client.get() or self._last
        if binding is None:
            raise AgentUnavailableError(f"no Durable client has reached this worker yet to signal "
                                        f"{ENTITY_NAME}/{agent_id.key}; the event stays pending")
        self._last = binding
        return await self._signals.submit(agent_id.key, events)

    async def _signal(self, key: str, events: list[Event]) -> list[AgentResult]:
        import azure.durable_functions as df

        payload: Any = events[0].to_dict() if len(events) == 1 else [event.to_dict() for event in events]
        for attempt in (1, 2):
            try:
                await call_client(self._last, lambda client: client.signal_entity(
                    df.EntityId(ENTITY_NAME, key), "deliver", payload))
                break
            except Exception as exc:  # the events stay pending; a resend with the same id signals again
                # A pooled keep-alive connection the host closed meanwhile: send once more on a fresh one (a
                # signal that did arrive twice is applied once: the mailbox checks the result document).
                if attempt == 1 and _connection_dropped(exc):
                    continue
                raise AgentUnavailableError(f"could not signal entity {ENTITY_NAME}/{key}: {exc}") from exc
        return [AgentResult(key, "accepted") for _ in events]

    @property
    def last_binding(self) -> tuple[Any, asyncio.AbstractEventLoop | None] | None:
        """The client of the last invocation that delivered through this dispatcher (for work no trigger started)."""
        return self._last

    async def close(self) -> None:
        return None


def _connection_dropped(exc: BaseException) -> bool:
    import aiohttp

    return isinstance(exc, ConnectionError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def _initial(key: str) -> dict[str, Any]:
    return {"agent_id": key, "type": None, "lifecycle": "created", "version": 0, "delivered": 0}


class KernelRunner(Protocol):
    """Runs `work(aos)` on the worker's warm kernel and blocks until it is done (`aos_core.runtime.run_with_aos`)."""

    def __call__(self, work: Callable[[Any], Awaitable[T]], timeout: float | None = None) -> T: ...


def run_agent_entity(context: Any, run_with_aos: KernelRunner) -> None:
    """The `agent` entity function: operations `deliver`, `status` and `terminate`, run on the kernel that
    `run_with_aos` (given by the app's entity function) reaches.

    A failed operation does not roll back entity state in the Python SDK, so each operation validates and does
    its work first and sets the new state last.
    """
    key = context.entity_key
    operation = context.operation_name
    state = context.get_state(lambda: _initial(key), expected_type=dict)
    if operation == "deliver":
        _deliver(context, key, state, run_with_aos)
    elif operation == "status":
        info = run_with_aos(lambda aos: aos.get_agent(key), _QUERY_TIMEOUT)
        context.set_result({**state, "agent": info})
    elif operation == "terminate":
        run_with_aos(lambda aos: _terminate(aos, key), _QUERY_TIMEOUT)
        context.set_state({**state, "lifecycle": "terminated"})
        context.set_result({"agent_id": key, "lifecycle": "terminated"})
    else:
        raise ValueError(f"entity {ENTITY_NAME} has no operation {operation!r} (deliver, status, terminate)")


def _deliver(context: Any, key: str, state: dict[str, Any], run_with_aos: KernelRunner) -> None:
    raw = context.get_input()
    batch = isinstance(raw, list)  # several events that waited while the previous signal was in flight
    try:
        events = [Event.model_validate(item) for item in (raw if batch else [raw])]
    except ValidationError as exc:
        raise ValueError(f"deliver needs a CloudEvents event or a list of them: {exc.errors()[0]['msg']}") from None
    if not events:
        raise ValueError("deliver needs a CloudEvents event or a list of them, not an empty list")

    async def apply(aos: Any) -> tuple[list[AgentResult], dict[str, Any]]:
        # The kernel decides exactly whether this agent has applied each event (from its durable result), so a
        # signal delivered twice applies once; its handling is bounded by dispatch.handler_timeout per attempt.
        if batch:  # no span around them all: each handler's span continues its own event's trace
            results = await aos.apply_deliveries(key, events)
        else:
            with aos.telemetry.event_span(SPAN_ENTITY, events[0], agent=key):  # continues the sender's trace
                results = await aos.apply_deliveries(key, events)
        live = aos.dispatcher.live_agent(key)
        lifecycle = aos.lifecycle.get(key)
        if live is None or lifecycle is None:  # not live (refused or failed): ask the registry
            info = await aos.get_agent(key)
            agent_type, state = info["type"], info["state"]
            version = ((await aos.read_context(key)) or {}).get("version", 0)
        else:  # the common case: what the kernel holds in memory, no read
            agent_type, state = live.agent_type, str(lifecycle.state)
            version = getattr(getattr(live, "context", None), "version", 0)
        return results, {"type": agent_type, "lifecycle": state, "version": version}

    # No timeout here: the kernel bounds each handling attempt, and waiting out a recovery back-off is the point.
    results, facts = _until_storage_answers(key, lambda: run_with_aos(apply))
    context.set_state({**state, **facts, "delivered": state.get("delivered", 0) + len(events)})
    answers = [result.to_dict() for result in results]
    context.set_result(answers if batch else answers[0])


def _until_storage_answers(key: str, work: Callable[[], T]) -> T:
    """`work()`, tried again after a growing pause for as long as storage is unavailable.

    The events are this entity's to apply (their senders were answered 202), so an outage must not fail the
    operation: a failed one is not delivered again, and the events would stay pending for good. Meanwhile the
    entity's queue keeps what follows them, in order. Events applied before the outage are recognised when the
    work runs again (the kernel's durable results). Should the host give up on the operation first (its function
    timeout), the platform runs the batch again, which is just as safe.
    """
    pauses = outage_pauses()
    while True:
        try:
            return work()
        except StorageUnavailableError as exc:
            pause = next(pauses)
            log.warning("entity %s/%s: %s; trying again in %.1fs", ENTITY_NAME, key, exc, pause)
            time.sleep(pause)  # a worker thread of its own: the kernel loop goes on


async def _terminate(aos: Any, key: str) -> None:
    info = await aos.get_agent(key)
    if info["state"] != "terminated":
        await aos.terminate_agent(key, reason="terminated through its entity")

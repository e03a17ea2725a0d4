"""Starting a workflow as the `aos_workflow` orchestration, once per id: the one way both the API and agents
(`AgentContext.start_workflow`, through the kernel's Orchestrations port) start workflows.

The definition is recorded create-only (`orchestrations/<id>`) before the orchestration is started, so a
resend (also one racing the first, or one after a crash between the two) starts nothing twice; the same id with
another definition is a ConflictError.
"""

from __future__ import annotations

from typing import Any

from aos_core.errors import AgentUnavailableError, ConflictError
from aos_core.ports import StateStore
from services.dispatch.durable import DurableEntityDispatcher, call_client, current_binding
from services.workflows.names import ORCHESTRATOR

RECORDS = "orchestrations/"
Binding = tuple[Any, Any]


def binding_or_fail(fallback: Binding | None = None) -> Binding:
    binding = current_binding() or fallback
    if binding is None:
        raise AgentUnavailableError("workflows run as Durable orchestrations; no Durable client has reached this "
                                    "worker yet")
    return binding


async def instance_status(binding: Binding, workflow_id: str) -> Any:
    """The orchestration's DurableOrchestrationStatus, or None if it has not been started."""
    status = await call_client(binding, lambda client: client.get_status(workflow_id))
    return status if status else None


async def start(store: StateStore, binding: Binding, workflow_id: str, definition: dict[str, Any],
                started_by: str) -> tuple[str, bool]:
    """Start workflow `workflow_id` unless it was started; (its runtime status, whether this call started it)."""
    try:
        await store.put(RECORDS + workflow_id, {"id": workflow_id, **definition, "started_by": started_by},
                        if_none_match=True)
    except ConflictError:
        doc = await store.get(RECORDS + workflow_id)
        if doc is None or {k: doc.value.get(k) for k in definition} != definition:
            raise ConflictError(RECORDS + workflow_id, f"workflow {workflow_id!r} exists with another definition"
                                ) from None
    status = await instance_status(binding, workflow_id)
    if status is not None:
        return status.runtime_status.name.lower(), False
    try:  # first time, or the first start crashed after recording it: start it now
        await call_client(binding, lambda client: client.start_new(
            ORCHESTRATOR, workflow_id, {"id": workflow_id, **definition}))
    except Exception:
        if await instance_status(binding, workflow_id) is None:
            raise
        return "pending", False  # a resend racing this one started it first
    return "pending", True


class DurableOrchestrations:
    """The kernel's Orchestrations port on a Functions host: workflows agents start run as `aos_workflow`."""

    def __init__(self, store: StateStore, dispatcher: Any) -> None:
        self._store = store
        self._dispatcher = dispatcher

    async def start(self, workflow_id: str, definition: dict[str, Any], *, started_by: str) -> None:
        last = self._dispatcher.last_binding if isinstance(self._dispatcher, DurableEntityDispatcher) else None
        await start(self._store, binding_or_fail(last), workflow_id, definition, started_by)

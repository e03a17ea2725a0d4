"""The handlers of the workflow operations (declared in `services.workflows.operations`).

`POST /api/workflows` starts one (`{"id"?, "name", "steps", "input"}` -> 202 with `Location:
/api/workflows/{id}`), `GET /api/workflows/{id}` is its status, custom status, output and each step's state,
`POST /api/workflows/{id}/events/{name}` raises an external event and `DELETE /api/workflows/{id}` terminates it.
Each goes through the Durable client of the invocation (`services.dispatch.durable_client`).

Starting is idempotent by id (`services.workflows.starter`): a resend starts nothing twice and gets the same
instance; the same id with another definition is a 409.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aos_core import api
from aos_core.errors import ConflictError, NotFoundError
from aos_core.workflow import WorkflowDefinition, WorkflowStep
from services.dispatch.durable import call_client
from services.workflows import starter
from services.workflows.orchestrator import WAIT

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_EVENT = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


class WorkflowStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    steps: list[WorkflowStep] = Field(min_length=1, max_length=200)
    input: Any = None

    @model_validator(mode="after")
    def _valid_definition(self) -> WorkflowStart:
        WorkflowDefinition(name=self.name, steps=self.steps)  # unique names, known dependencies, no cycles
        return self


class StepState(BaseModel):
    status: str
    result: Any = None
    error: str | None = None
    attempts: int | None = None


class WorkflowStatus(BaseModel):
    id: str
    name: str
    status: str  # pending, running, completed, failed, terminated
    steps: dict[str, StepState]
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    created_at: str | None = None
    updated_at: str | None = None


class WorkflowAccepted(BaseModel):
    id: str
    status: str
    status_url: str


def _url(workflow_id: str) -> str:
    return f"/api/workflows/{quote(workflow_id, safe='')}"


def _path(request: api.ApiRequest, name: str, pattern: str) -> str:
    value = request.route_params.get(name, "")
    if not re.match(pattern, value):
        raise api.Problem(400, "Invalid request", f"{name} {value!r} must match {pattern}")
    return value


async def start_workflow(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    spec: WorkflowStart = api.parse(WorkflowStart, request, "workflow")
    known = {*aos.workflows.actions, WAIT}
    if unknown := sorted({s.action for s in spec.steps} - known):
        raise api.Problem(400, "Invalid request", f"unknown step kind {', '.join(map(repr, unknown))} (known: "
                          f"{', '.join(sorted(known))})", errors=[{"loc": "steps", "msg": "unknown step kind"}])
    workflow_id = spec.id or aos.ids.new_id()
    definition = spec.model_dump(mode="json", exclude={"id"})
    await api.enforce(aos, caller, "workflow.start", subject=f"workflow/{workflow_id}")
    status, started = await starter.start(aos.store, starter.binding_or_fail(), workflow_id, definition, caller.name)
    if started and aos.audit is not None:
        await aos.audit.append(caller.name, "workflow.started", f"workflow/{workflow_id}", {"name": spec.name})
    return _accepted(workflow_id, status)


def _accepted(workflow_id: str, status: str) -> api.ApiResponse:
    body = WorkflowAccepted(id=workflow_id, status=status, status_url=_url(workflow_id))
    return api.ApiResponse(202, body.model_dump(), {"Location": _url(workflow_id)})


async def get_workflow(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    workflow_id = _path(request, "workflow_id", _ID)
    doc = await aos.store.get(starter.RECORDS + workflow_id)
    if doc is None:
        raise NotFoundError(f"workflow {workflow_id!r} does not exist")
    status = await starter.instance_status(starter.binding_or_fail(), workflow_id)
    custom = status.custom_status if status is not None else None
    steps = (custom or {}).get("steps") if isinstance(custom, dict) else None
    runtime = status.runtime_status.name.lower() if status is not None and status.runtime_status else "pending"
    failed = runtime == "failed"
    body = WorkflowStatus(
        id=workflow_id, name=doc.value["name"], status=runtime,
        steps=steps or {s["name"]: {"status": "pending"} for s in doc.value["steps"]},
        output=None if failed or status is None else status.output,
        error=str(status.output) if failed and status is not None else None, custom_status=custom,
        created_at=status.created_time.isoformat() if status is not None and status.created_time else None,
        updated_at=status.last_updated_time.isoformat() if status is not None and status.last_updated_time else None)
    return api.ApiResponse(200, body.model_dump(mode="json"))


async def _running(aos: AgentOperatingSystem, workflow_id: str) -> None:
    if await aos.store.get(starter.RECORDS + workflow_id) is None:
        raise NotFoundError(f"workflow {workflow_id!r} does not exist")
    status = await starter.instance_status(starter.binding_or_fail(), workflow_id)
    if status is not None and status.runtime_status.name in ("Completed", "Failed", "Terminated"):
        raise ConflictError(starter.RECORDS + workflow_id, f"workflow {workflow_id!r} has finished "
                                                   f"({status.runtime_status.name.lower()})")


async def raise_workflow_event(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller
                               ) -> api.ApiResponse:
    workflow_id = _path(request, "workflow_id", _ID)
    name = _path(request, "name", _EVENT)
    data = api.json_body(request) if request.body.strip() else None
    await _running(aos, workflow_id)
    await api.enforce(aos, caller, "workflow.raise", subject=f"workflow/{workflow_id}")
    await call_client(starter.binding_or_fail(), lambda client: client.raise_event(workflow_id, name, data))
    if aos.audit is not None:
        await aos.audit.append(caller.name, "workflow.event_raised", f"workflow/{workflow_id}", {"name": name})
    return _accepted(workflow_id, "running")


async def terminate_workflow(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    workflow_id = _path(request, "workflow_id", _ID)
    reason = request.query.get("reason") or f"terminated by {caller.name}"
    await _running(aos, workflow_id)
    await api.enforce(aos, caller, "workflow.terminate", subject=f"workflow/{workflow_id}")
    await call_client(starter.binding_or_fail(), lambda client: client.terminate(workflow_id, reason[:500]))
    if aos.audit is not None:
        await aos.audit.append(caller.name, "workflow.terminated", f"workflow/{workflow_id}", {"reason": reason})
    return _accepted(workflow_id, "terminating")

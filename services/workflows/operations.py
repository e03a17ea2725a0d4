"""The workflows area's HTTP operations: workflows run as Durable orchestrations (handlers in
`services.workflows.routes`). Each gets the invocation's Durable client to start, query, signal or terminate."""

from __future__ import annotations

from aos_core.operations import HttpOperation, Param, Reply

_ROUTES = "services.workflows.routes:"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_EVENT = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
WORKFLOW_ID = Param("workflow_id", "path", {"type": "string", "pattern": _ID})
EVENT_NAME = Param("name", "path", {"type": "string", "pattern": _EVENT})
_ACCEPTED = Reply("accepted", _ROUTES + "WorkflowAccepted", headers=("Location",))
_BODY_ID = "$response.body#/id"

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "start_workflow", "workflows", ("POST",), "operator", _ROUTES + "start_workflow",
        "Start a workflow (a Durable orchestration); idempotent by id", body=_ROUTES + "WorkflowStart",
        has_body=True, durable_client=True,
        replies={202: Reply("accepted", _ROUTES + "WorkflowAccepted", headers=("Location",), links={
            name: (op, {"workflow_id": _BODY_ID}) for name, op in (
                ("GetWorkflow", "get_workflow"), ("RaiseWorkflowEvent", "raise_workflow_event"),
                ("TerminateWorkflow", "terminate_workflow"))})},
        problems=(400, 401, 403, 409, 413, 503)),
    HttpOperation(
        "get_workflow", "workflows/{workflow_id}", ("GET",), "reader", _ROUTES + "get_workflow",
        "A workflow's status, steps and output", params=(WORKFLOW_ID,), durable_client=True,
        replies={200: Reply("the workflow", _ROUTES + "WorkflowStatus")}, problems=(400, 401, 403, 404, 503)),
    HttpOperation(
        "terminate_workflow", "workflows/{workflow_id}", ("DELETE",), "operator", _ROUTES + "terminate_workflow",
        "Terminate a running workflow", durable_client=True,
        params=(WORKFLOW_ID, Param("reason", schema={"type": "string", "maxLength": 500})),
        replies={202: _ACCEPTED}, problems=(400, 401, 403, 404, 409, 503)),
    HttpOperation(
        "raise_workflow_event", "workflows/{workflow_id}/events/{name}", ("POST",), "operator",
        _ROUTES + "raise_workflow_event", "Raise an external event a `wait` step waits for",
        params=(WORKFLOW_ID, EVENT_NAME), body={}, body_required=False, has_body=True, durable_client=True,
        replies={202: _ACCEPTED}, problems=(400, 401, 403, 404, 409, 413, 503)),
)

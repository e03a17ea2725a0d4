"""The workflow functions of the app, as one Blueprint `function_app.py` registers: the `aos_workflow`
orchestrator, its `aos_workflow_step` activity and the `/api/workflows` routes (`services.workflows.routes`)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from aos_core.runtime import with_aos
from services.dispatch import durable_client
from services.workflows import routes as _routes  # noqa: F401  (registers the API operations)
from services.workflows.orchestrator import ACTIVITY, ORCHESTRATOR, run_step, workflow_orchestrator

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def aos_workflow(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield from workflow_orchestrator(context))


@bp.activity_trigger(input_name="step", activity=ACTIVITY)
@bp.durable_client_input(client_name="client")
async def aos_workflow_step(step: dict[str, Any], client: df.DurableOrchestrationClient) -> Any:
    with durable_client(client):  # an event step reaches perpetual agents through their entities
        return await with_aos(lambda aos: run_step(aos, step))

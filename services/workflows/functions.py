"""The workflow functions of the app, as one Blueprint `function_app.py` registers: the `aos_workflow`
orchestrator and its `aos_workflow_step` activity. The workflow code loads when one first runs."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from services.workflows.names import ACTIVITY, ORCHESTRATOR

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def aos_workflow(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    from services.workflows.orchestrator import workflow_orchestrator

    return (yield from workflow_orchestrator(context))


@bp.activity_trigger(input_name="step", activity=ACTIVITY)
@bp.durable_client_input(client_name="client")
async def aos_workflow_step(step: dict[str, Any], client: df.DurableOrchestrationClient) -> Any:
    from aos_core.runtime import with_aos
    from services.dispatch import durable_client
    from services.workflows.orchestrator import run_step

    with durable_client(client):  # an event step reaches perpetual agents through their entities
        return await with_aos(lambda aos: run_step(aos, step))

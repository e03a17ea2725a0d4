"""The kernel's workflows (`aos_core.workflow`) as one Durable orchestration: `aos_workflow` and its activity.

The orchestration's input is the workflow: `{"id", "name", "steps": [...], "input"}` with the kernel's step
model (`name`, `action`, `input`, `depends_on`, `retries`). A step starts once every step it depends on has
completed, so independent steps run at once. Each step of a kernel action (`event`, or any action registered on
the kernel) is one call of the activity `aos_workflow_step`, retried `retries` more times with a durable
back-off; its result is the step's result. A `wait` step waits for the external event named by its input
(`{"event": name, "timeout": seconds}`), raised with `POST /api/workflows/{id}/events/{name}`; past the timeout
its result is `{"timed_out": true}`.

A step's event gets the id `<workflow id>.<step name>` unless it names one, so the kernel's one way in applies
it once even when the activity runs again (an activity is at least once: after a crash of the host it may
run again). The orchestration's custom status is each step's state, its output each step's result.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from aos_core.workflow import WorkflowDefinition, WorkflowStep
from services.workflows.names import ACTIVITY

WAIT = "wait"  # a step kind of the orchestration itself: no activity, an external event or its deadline
RETRY_INTERVAL_MS = 500


def step_input(workflow: dict[str, Any], step: WorkflowStep) -> Any:
    value = step.input if step.input is not None else workflow.get("input")
    if step.action == "event" and isinstance(value, dict) and "id" not in value:
        value = {**value, "id": f"{workflow['id']}.{step.name}"}  # the same id however often the step runs
    return value


def _start(context: Any, workflow: dict[str, Any], step: WorkflowStep, deps: dict[str, Any]) -> Any:
    import azure.durable_functions as df

    value = step_input(workflow, step)
    if step.action == WAIT:
        spec = value if isinstance(value, dict) else {"event": value}
        event = context.wait_for_external_event(str(spec.get("event") or step.name))
        if spec.get("timeout") is None:
            return event
        deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=float(spec["timeout"])))
        return context.task_any([event, deadline])
    payload = {"workflow": workflow["id"], "step": step.name, "action": step.action, "input": value, "deps": deps}
    if step.retries:
        return context.call_activity_with_retry(ACTIVITY, df.RetryOptions(RETRY_INTERVAL_MS, step.retries + 1),
                                                payload)
    return context.call_activity(ACTIVITY, payload)


def _outcome(task: Any) -> tuple[bool, Any]:
    """(succeeded, result) of a finished step task; a `wait` step with a deadline resolves to the task that won."""
    from azure.durable_functions.models.Task import TaskBase, TimerTask

    result = task.result
    if isinstance(result, Exception):
        return False, str(result).split("\n")[0].strip()
    if isinstance(result, TaskBase):  # the winner of a wait step's task_any: its event, or its deadline
        if isinstance(result, TimerTask):
            return True, {"timed_out": True}
        for child in task.children:
            if isinstance(child, TimerTask) and not child.is_completed:
                child.cancel()
        return True, result.result
    return True, result


def workflow_orchestrator(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    """The body of the `aos_workflow` orchestrator (deterministic: everything comes from its input and history)."""
    workflow = context.get_input()
    definition = WorkflowDefinition.model_validate({"name": workflow["name"], "steps": workflow["steps"]})
    steps = {s.name: s for s in definition.steps}
    order = definition.order()
    states: dict[str, dict[str, Any]] = {n: {"status": "pending", "result": None, "error": None} for n in order}
    running: dict[str, Any] = {}
    failure: str | None = None
    while True:
        for name in order if failure is None else []:
            step = steps[name]
            if states[name]["status"] == "pending" and all(states[d]["status"] == "completed" for d in step.depends_on):
                running[name] = _start(context, workflow, step, {d: states[d]["result"] for d in step.depends_on})
                states[name]["status"] = "running"
        context.set_custom_status({"workflow": workflow["name"], "steps": states})
        if not running:
            break
        done = yield context.task_any(list(running.values()))
        name = next(n for n, t in running.items() if t is done)
        del running[name]
        succeeded, result = _outcome(done)
        attempts = getattr(done, "num_attempts", 1)
        if succeeded:
            states[name].update(status="completed", result=result, attempts=attempts)
        else:
            states[name].update(status="failed", error=result, attempts=attempts)
            failure = failure or f"step {name!r} failed: {result}"
    context.set_custom_status({"workflow": workflow["name"], "steps": states})
    if failure is not None:
        raise RuntimeError(failure)
    return {name: states[name]["result"] for name in order}


async def run_step(aos: Any, step: dict[str, Any]) -> Any:
    """The body of the `aos_workflow_step` activity: the step's kernel action, through the kernel's one way in."""
    return await aos.workflows.call_action(step["action"], step.get("input"), step.get("deps") or {})

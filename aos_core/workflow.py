"""Persisted multi-step workflows: steps with dependencies, each step's outcome stored as it completes.

After a restart, `resume_all()` continues running workflows: completed steps are not run again; a step
that was running when the process died runs again, so step actions should be idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field, model_validator

from aos_core.errors import ConflictError, NotFoundError
from aos_core.graph import topological_order
from aos_core.ports import Clock, IdFactory, StateStore

Action = Callable[[Any, dict[str, Any]], Awaitable[Any]]
_PREFIX = "workflow/"


class WorkflowStep(BaseModel):
    name: str
    action: str
    input: Any = None
    depends_on: list[str] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0)


class WorkflowDefinition(BaseModel):
    name: str
    steps: list[WorkflowStep]

    @model_validator(mode="after")
    def _check(self) -> WorkflowDefinition:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        topological_order({s.name: s.depends_on for s in self.steps})
        return self


class WorkflowEngine:
    def __init__(self, store: StateStore, clock: Clock, ids: IdFactory) -> None:
        self._store, self._clock, self._ids = store, clock, ids
        self._actions: dict[str, Action] = {}

    def register_action(self, name: str, fn: Action) -> None:
        self._actions[name] = fn

    async def start(self, definition: WorkflowDefinition, *, workflow_id: str | None = None,
                    input: Any = None) -> str:
        """Store a new workflow (create-only: an existing id is returned as is). Run it with `run`."""
        workflow_id = workflow_id or self._ids.new_id()
        doc = {"id": workflow_id, "definition": definition.model_dump(), "status": "pending", "input": input,
               "steps": {s.name: {"status": "pending", "attempts": 0} for s in definition.steps}}
        try:
            await self._store.put(_PREFIX + workflow_id, doc, if_none_match=True)
        except ConflictError:
            pass
        return workflow_id

    async def get(self, workflow_id: str) -> dict[str, Any]:
        doc = await self._store.get(_PREFIX + workflow_id)
        if doc is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return doc.value

    async def _update(self, workflow_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        while True:
            doc = await self._store.get(_PREFIX + workflow_id)
            if doc is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            value = doc.value
            change(value)
            try:
                await self._store.put(_PREFIX + workflow_id, value, if_match=doc.etag)
                return value
            except ConflictError:
                continue

    def _set(self, step: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
        def change(value: dict[str, Any]) -> None:
            value["steps"][step].update(fields)
        return change

    async def run(self, workflow_id: str) -> dict[str, Any]:
        """Run every ready step (concurrently where independent) until the workflow completes or fails."""
        value = await self._update(workflow_id, lambda v: v.update(status="running"))
        definition = WorkflowDefinition.model_validate(value["definition"])
        steps = {s.name: s for s in definition.steps}
        while True:
            value = await self.get(workflow_id)
            states = value["steps"]
            if any(s["status"] == "failed" for s in states.values()):
                return await self._update(workflow_id, lambda v: v.update(status="failed"))
            if all(s["status"] == "completed" for s in states.values()):
                return await self._update(workflow_id, lambda v: v.update(status="completed"))
            ready = [n for n, s in states.items() if s["status"] in ("pending", "running")
                     and all(states[d]["status"] == "completed" for d in steps[n].depends_on)]
            await asyncio.gather(*(self._run_step(workflow_id, steps[n], value) for n in ready))

    async def _run_step(self, workflow_id: str, step: WorkflowStep, value: dict[str, Any]) -> None:
        deps = {d: value["steps"][d].get("result") for d in step.depends_on}
        action = self._actions.get(step.action)
        attempts = value["steps"][step.name].get("attempts", 0)
        while True:
            attempts += 1
            await self._update(workflow_id, self._set(step.name, status="running", attempts=attempts,
                                                      started_at=self._clock.now().isoformat()))
            try:
                if action is None:
                    raise NotFoundError(f"no workflow action named {step.action!r}")
                result = await action(step.input, deps)
            except Exception as exc:
                if attempts <= step.retries:
                    continue
                await self._update(workflow_id, self._set(step.name, status="failed",
                                                          error=f"{type(exc).__name__}: {exc}",
                                                          finished_at=self._clock.now().isoformat()))
                return
            await self._update(workflow_id, self._set(step.name, status="completed", result=result,
                                                      finished_at=self._clock.now().isoformat()))
            return

    async def resume_all(self) -> None:
        for doc in await self._store.list(_PREFIX, limit=10_000):
            if doc.value.get("status") in ("pending", "running"):
                await self.run(doc.value["id"])

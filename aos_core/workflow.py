"""Persisted multi-step workflows: steps with dependencies, each step's progress stored as it happens.

A workflow is one document, `workflow/<id>`:

    {"id", "name", "definition", "input", "status": pending|running|completed|failed, "error",
     "created_at", "finished_at",
     "steps": {name: {"status": pending|running|completed|failed, "result", "error", "attempts",
                      "started_at", "finished_at"}}}

A step runs as soon as every step it depends on has completed, so independent steps run concurrently. Its
action is called as `await fn(input, deps)`: `input` is the step's own input, or the workflow's input when
the step has none; `deps` maps each dependency's name to its result. A step that raises is retried up to
`retries` more times; then it fails, the steps already running finish, and the workflow fails with its error.

Every change is written with the document's ETag (a lost race reloads and reapplies the change), so after a
crash `resume_all()` continues from the stored state: completed steps are NOT run again, but a step that was
running when the process died runs again. Actions should therefore be idempotent (or check for their own
earlier effect), exactly as Durable Functions activities should.

Several workers (Functions instances) share the store, and each resumes unfinished workflows when it starts;
so a workflow runs under a lease kept in its document (`runner`, `runner_until`): one engine runs its steps,
renewing the lease every third of `lease_ttl`, and another waits, taking over only once the lease has run out
(its runner died). Until workflows run as Durable orchestrations, this is what keeps a step on one worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aos_core.errors import ConflictError, NotFoundError
from aos_core.etag import update_document
from aos_core.graph import topological_order
from aos_core.ports import JSON, Clock, IdFactory, StateStore
from aos_core.single_flight import SingleFlight

log = logging.getLogger(__name__)

Action = Callable[[Any, dict[str, Any]], Awaitable[JSON]]
PREFIX = "workflow/"
UNFINISHED = ("pending", "running")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_PAGE = 500


class WorkflowStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    action: str = Field(min_length=1)  # a name given to WorkflowEngine.register_action
    input: Any = None
    depends_on: list[str] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0)  # extra attempts after the first failure


class WorkflowDefinition(BaseModel):
    """Named steps; validated at construction: unique names, known dependencies, no cycles."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    steps: list[WorkflowStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> WorkflowDefinition:
        names = [s.name for s in self.steps]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"step names must be unique: {', '.join(duplicates)}")
        self.order()  # RegistrationError (a ValueError) names a missing dependency or the cycle
        return self

    def order(self) -> list[str]:
        """Step names, each after the steps it depends on."""
        return topological_order({s.name: s.depends_on for s in self.steps})


class WorkflowEngine:
    """Stores, runs and resumes workflows; actions are registered by name so a stored workflow can resume."""

    def __init__(self, store: StateStore, clock: Clock, ids: IdFactory, *, lease_ttl: float = 30.0) -> None:
        self._store, self._clock, self._ids = store, clock, ids
        self._runner = uuid.uuid4().hex  # this engine as a lease holder (not an id of the domain: not from `ids`)
        self._lease_ttl = lease_ttl
        self._actions: dict[str, Action] = {}
        self._active: SingleFlight[str, dict[str, Any]] = SingleFlight()  # one run per workflow in this process
        self._locks: dict[str, asyncio.Lock] = {}

    def register_action(self, name: str, fn: Action) -> Action:
        self._actions[name] = fn
        return fn

    @property
    def actions(self) -> list[str]:
        """The names steps may use as their `action`."""
        return sorted(self._actions)

    async def call_action(self, name: str, step_input: Any, deps: dict[str, Any]) -> JSON:
        """Run one step's action outside this engine (a Durable activity runs each step of a hosted workflow)."""
        action = self._actions.get(name)
        if action is None:
            raise NotFoundError(f"no workflow action named {name!r} (actions: {', '.join(self.actions)})")
        return await action(step_input, deps)

    async def start(self, definition: WorkflowDefinition, *, workflow_id: str | None = None,
                    input: JSON = None) -> str:
        """Store a new workflow (create-only) and run it to the end; return its id.

        An id that already exists is returned without running anything again (ConflictError if it was
        started with another definition); `run` or `resume_all` continue an unfinished one.
        """
        workflow_id = workflow_id or self._ids.new_id()
        if not _ID.match(workflow_id):
            raise ValueError(f"workflow id {workflow_id!r} must match {_ID.pattern}")
        if missing := sorted({s.action for s in definition.steps} - set(self._actions)):
            raise NotFoundError(f"workflow {definition.name!r}: no action registered as {', '.join(missing)}")
        stored = definition.model_dump(mode="json")
        doc = {"id": workflow_id, "name": definition.name, "definition": stored, "input": input,
               "status": "pending", "error": None, "created_at": self._now(), "finished_at": None,
               "steps": {s.name: {"status": "pending", "result": None, "error": None, "attempts": 0,
                                  "started_at": None, "finished_at": None} for s in definition.steps}}
        try:
            await self._store.put(PREFIX + workflow_id, doc, if_none_match=True)
        except ConflictError:
            existing = await self.get(workflow_id)
            if existing.get("definition") != stored:
                raise ConflictError(PREFIX + workflow_id, "a workflow with this id has another definition") from None
            return workflow_id
        await self.run(workflow_id)
        return workflow_id

    async def get(self, workflow_id: str) -> dict[str, Any]:
        """The stored workflow document; NotFoundError if there is none."""
        doc = await self._store.get(PREFIX + workflow_id)
        if doc is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return dict(doc.value)

    async def run(self, workflow_id: str) -> dict[str, Any]:
        """Run the workflow's remaining steps until it completes or fails; return the final document.

        A finished workflow is returned as is; a second call while one runs in this process waits for it.
        """
        return await self._active.run(workflow_id, lambda: self._run(workflow_id))

    async def resume_all(self) -> list[str]:
        """Continue every pending or running workflow (after a restart); return their ids.

        One workflow's failure to resume (a store error) is logged and does not stop the others.
        """
        ids: list[str] = []
        start_after: str | None = None
        while True:
            page = await self._store.list(PREFIX, start_after=start_after, limit=_PAGE)
            ids += [d.key[len(PREFIX):] for d in page
                    if "/" not in d.key[len(PREFIX):] and d.value.get("status") in UNFINISHED]
            if len(page) < _PAGE:
                break
            start_after = page[-1].key
        outcomes = await asyncio.gather(*(self.run(i) for i in ids), return_exceptions=True)
        for workflow_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("workflow %s could not be resumed", workflow_id, exc_info=outcome)
            elif isinstance(outcome, BaseException):
                raise outcome  # cancellation or a crash: not ours to swallow
        return ids

    # --- running ----------------------------------------------------------------------------------------

    async def _run(self, workflow_id: str) -> dict[str, Any]:
        while True:  # wait while another worker runs it; take it over once its lease runs out
            value = await self.get(workflow_id)
            if value["status"] not in UNFINISHED:
                return value
            if await self._claim(workflow_id):
                break
            await self._clock.sleep(self._lease_ttl / 3)
        renewer = asyncio.ensure_future(self._renew(workflow_id))
        try:
            return await self._run_claimed(workflow_id)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _claim(self, workflow_id: str) -> bool:
        now = self._clock.now()
        until = (now + timedelta(seconds=self._lease_ttl)).isoformat()

        def claim(value: dict[str, Any]) -> None:
            held = value.get("runner") not in (None, self._runner) and value.get("runner_until", "") > now.isoformat()
            if held:
                raise _Held()
            value.update(runner=self._runner, runner_until=until)

        try:
            await self._update(workflow_id, claim)
            return True
        except _Held:
            return False

    async def _renew(self, workflow_id: str) -> None:
        while True:
            await self._clock.sleep(self._lease_ttl / 3)
            until = (self._clock.now() + timedelta(seconds=self._lease_ttl)).isoformat()

            def extend(value: dict[str, Any], until: str = until) -> None:
                if value.get("runner") == self._runner:
                    value["runner_until"] = until

            try:
                await self._update(workflow_id, extend)
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage fault: the lease may run out, and another worker take over
                log.warning("workflow %s: renewing its lease failed", workflow_id, exc_info=True)

    async def _run_claimed(self, workflow_id: str) -> dict[str, Any]:
        value = await self.get(workflow_id)
        definition = WorkflowDefinition.model_validate(value["definition"])
        steps = {s.name: s for s in definition.steps}
        order = definition.order()
        running: dict[asyncio.Task[None], str] = {}
        try:
            value = await self._update(workflow_id, lambda v: v.update(status="running"))
            while True:
                states = value["steps"]
                failed = [n for n in order if states[n]["status"] == "failed"]
                if failed and not running:
                    error = f"step {failed[0]!r} failed: {states[failed[0]]['error']}"
                    return await self._finish(workflow_id, "failed", error)
                if all(s["status"] == "completed" for s in states.values()):
                    return await self._finish(workflow_id, "completed", None)
                if not failed:  # after a failure, let running steps finish but start no new ones
                    for name in order:
                        if (states[name]["status"] in UNFINISHED and name not in running.values()
                                and all(states[d]["status"] == "completed" for d in steps[name].depends_on)):
                            deps = {d: states[d]["result"] for d in steps[name].depends_on}
                            step_input = steps[name].input if steps[name].input is not None else value["input"]
                            attempts = int(states[name].get("attempts") or 0)
                            task = asyncio.ensure_future(self._run_step(workflow_id, steps[name], step_input,
                                                                        deps, attempts))
                            running[task] = name
                if not running:
                    raise RuntimeError(f"workflow {workflow_id!r} cannot make progress: {states}")
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    del running[task]
                    task.result()  # a store error or a crash ends this run; the stored state stays resumable
                value = await self.get(workflow_id)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self._locks.pop(workflow_id, None)

    async def _run_step(self, workflow_id: str, step: WorkflowStep, step_input: Any, deps: dict[str, Any],
                        attempts: int) -> None:
        action = self._actions.get(step.action)
        while True:
            attempts += 1
            await self._set(workflow_id, step.name, status="running", attempts=attempts, error=None,
                            started_at=self._now(), finished_at=None)
            try:
                if action is None:
                    raise NotFoundError(f"no workflow action named {step.action!r}")
                result = await action(step_input, deps)
                json.dumps(result, allow_nan=False)  # a result that cannot be stored is the step's failure
            except Exception as exc:
                if action is not None and attempts <= step.retries:
                    continue
                await self._set(workflow_id, step.name, status="failed", error=f"{type(exc).__name__}: {exc}",
                                finished_at=self._now())
                return
            await self._set(workflow_id, step.name, status="completed", result=result, finished_at=self._now())
            return

    # --- storage ----------------------------------------------------------------------------------------

    async def _set(self, workflow_id: str, step: str, **fields: Any) -> None:
        await self._update(workflow_id, lambda value: value["steps"][step].update(fields))

    async def _finish(self, workflow_id: str, status: str, error: str | None) -> dict[str, Any]:
        return await self._update(workflow_id, lambda v: v.update(status=status, error=error,
                                                                  finished_at=self._now(), runner=None))

    async def _update(self, workflow_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        # Concurrent steps of one workflow share its document: a lock avoids conflicts between them in this
        # process, the ETag catches another process; a lost race reloads and applies the change again.
        def changed(value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            if value is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            change(value)
            return value, value

        async with self._locks.setdefault(workflow_id, asyncio.Lock()):
            return await update_document(self._store, PREFIX + workflow_id, changed, what=f"workflow {workflow_id!r}")

    def _now(self) -> str:
        return self._clock.now().isoformat()


class _Held(Exception):
    """Another worker holds the workflow's lease."""

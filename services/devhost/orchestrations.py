"""Durable orchestrations on the local host, run the way the Durable extension runs out-of-proc orchestrators.

The app's orchestrator function is the SDK's own (`Orchestrator.create` wraps it): the host gives it the
instance's history as JSON (`{"history": [...], "input", "instanceId", "isReplaying", "parentInstanceId",
"upperSchemaVersion"}`), the SDK replays it and returns its `OrchestratorState` (`isDone`, `actions`, `output`,
`customStatus`, or an error after `$OutOfProcData$:`). The host turns the actions it has not seen yet into
work (activities, timers, entity calls and signals, sub-orchestrations, `continue_as_new`) and history events,
with the event ids the SDK gives its tasks (one per scheduled task, in order), and commits the episode's new
history, the messages it consumed and the work it started in one SQLite transaction (`orchestration_db`). A
`kill -9` before that commit runs the episode again from the same history; after it, never again. An
activity's result is committed with the removal of its work item, so a completed activity never runs twice;
one that was running when the host died runs again (at least once, as on Azure).

Activity retries follow the extension's shape: a failed attempt is followed by a durable timer
(`firstRetryIntervalInMilliseconds`, times `backoffCoefficient` per attempt) and a new `TaskScheduled`, which
the SDK's `RetryAbleTask` expects; such a failure or timer is handed to the orchestrator alone, so the ids the
host gives the timer and the next attempt are the ones the SDK gives them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType as H
from azure.durable_functions.models.ReplaySchema import ReplaySchema
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from aos_core.ports import Clock
from services.devhost import orchestration_db as odb
from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.leases import LeaseLost, Leases, holds
from services.sqlite import SqliteDatabase

log = logging.getLogger("aos.devhost.orchestrations")
_OUT_OF_PROC = "\n\n$OutOfProcData$:"
_FAILURES = (H.TASK_FAILED, H.SUB_ORCHESTRATION_INSTANCE_FAILED)
_RETRY_MAX = 30.0
_POLL = 0.5  # seconds between looks at the inbox and work tables when nothing woke the host


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(kind: H, now: float, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """A history event as the out-of-proc protocol spells it (the SDK's `HistoryEvent` field names)."""
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False, "Timestamp": iso(now), **fields}


def started_event(name: str, instance_id: str, execution_id: str, input_json: str | None, now: float,
                  parent: tuple[str, int] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"Name": name, "Input": input_json, "Version": None,
                              "OrchestrationInstance": {"InstanceId": instance_id, "ExecutionId": execution_id}}
    if parent is not None:
        fields["ParentInstance"] = {"OrchestrationInstance": {"InstanceId": parent[0]}, "TaskScheduleId": parent[1]}
    return event(H.EXECUTION_STARTED, now, **fields)


def flatten(actions: list[Any]) -> Iterator[dict[str, Any]]:
    """The actions in the order the SDK numbered their tasks; WhenAll/WhenAny only group others."""
    for action in actions:
        if isinstance(action, list):
            yield from flatten(action)
        elif action.get("actionType") in (ActionType.WHEN_ALL, ActionType.WHEN_ANY):
            yield from flatten(action.get("compoundActions", []))
        else:
            yield action


def _retry_delay(options: dict[str, Any], attempt: int) -> float:
    first = float(options.get("firstRetryIntervalInMilliseconds", 1000)) / 1000
    delay = first * float(options.get("backoffCoefficient", 1.0)) ** (attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    return min(delay, float(cap) / 1000) if cap else delay


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Episode:
    """One orchestrator invocation's bookkeeping: the ids it hands out and what it commits."""

    def __init__(self, host: OrchestrationHost, instance: odb.Instance, now: float) -> None:
        self.host, self.instance, self.now = host, instance, now
        self.progress: dict[str, Any] = {"next_id": 0, "actions": 0, "tasks": {}, **instance.progress}
        self.commit = odb.EpisodeCommit(instance.instance_id, instance.execution_id, [], [], "Running",
                                        instance.output, instance.custom_status, self.progress)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.progress["tasks"]  # type: ignore[no-any-return]

    def next_id(self) -> int:
        task_id = int(self.progress["next_id"])
        self.progress["next_id"] = task_id + 1
        return task_id

    def retry_related(self, message: dict[str, Any]) -> bool:
        kind = message.get("EventType")
        if kind in _FAILURES:
            return bool(self.tasks.get(str(message.get("TaskScheduledId")), {}).get("retry"))
        if kind == H.TIMER_FIRED:
            return self.tasks.get(str(message.get("TimerId")), {}).get("kind") == "retry_timer"
        return False

    # --- scheduling ------------------------------------------------------------------------------------

    def schedule(self, task: dict[str, Any]) -> None:
        """Start one attempt of an activity or a sub-orchestration under a new task id."""
        task_id = self.next_id()
        if task.get("retry"):  # kept until it succeeds: its failures get a back-off timer and another attempt
            self.tasks[str(task_id)] = task
        if task["kind"] == "activity":
            self.commit.history.append(event(H.TASK_SCHEDULED, self.now, task_id, Name=task["name"],
                                             Input=task["input"]))
            if self.host.activity(task["name"]) is None:
                self.fail_soon(task_id, f"no activity function named {task['name']!r}")
            else:
                self.commit.work.append((task_id, task["name"], task["input"]))
            return
        child_id = task.get("instance") or f"{self.instance.instance_id}:{task_id:04d}"
        self.commit.history.append(event(H.SUB_ORCHESTRATION_INSTANCE_CREATED, self.now, task_id, Name=task["name"],
                                         InstanceId=child_id, Input=task["input"]))
        execution_id = uuid.uuid4().hex
        parent = (self.instance.instance_id, task_id)
        refused = event(H.SUB_ORCHESTRATION_INSTANCE_FAILED, self.now, TaskScheduledId=task_id, Details=None,
                        Reason=f"an orchestration instance {child_id!r} is already running")
        self.commit.children.append(odb.NewInstance(
            child_id, task["name"], execution_id, task["input"],
            started_event(task["name"], child_id, execution_id, task["input"], self.now, parent), *parent,
            refused=refused))

    def fail_soon(self, task_id: int, reason: str) -> None:
        self.commit.messages.append((self.instance.instance_id, event(
            H.TASK_FAILED, self.now, TaskScheduledId=task_id, Reason=reason, Details=None), self.now))

    def retry_step(self, message: dict[str, Any]) -> None:
        """A retried task's failure gets its back-off timer; the timer's firing gets the next attempt."""
        if message["EventType"] in _FAILURES:
            failed = str(message["TaskScheduledId"])
            task = self.tasks[failed]
            fire_at = self.now + _retry_delay(task["retry"], int(task.get("attempt", 1)))
            timer_id = self.next_id()
            self.tasks[str(timer_id)] = {"kind": "retry_timer", "of": failed}
            self.commit.history.append(event(H.TIMER_CREATED, self.now, timer_id, FireAt=iso(fire_at)))
            self.commit.messages.append((self.instance.instance_id, event(
                H.TIMER_FIRED, self.now, TimerId=timer_id, FireAt=iso(fire_at)), fire_at))
            return
        timer = self.tasks.pop(str(message["TimerId"]))
        task = self.tasks.pop(timer["of"])
        if int(task.get("attempt", 1)) < int(task["retry"].get("maxNumberOfAttempts", 1)):
            self.schedule({**task, "attempt": int(task.get("attempt", 1)) + 1})
        else:
            self.tasks[timer["of"]] = task  # the last attempt failed: the SDK fails the task now

    def apply(self, action: dict[str, Any]) -> None:
        kind = action.get("actionType")
        instance_id = self.instance.instance_id
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            self.schedule({"kind": "activity", "name": action["functionName"], "input": action.get("input"),
                           "retry": action.get("retryOptions"), "attempt": 1})
        elif kind in (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            self.schedule({"kind": "orchestration", "name": action["functionName"], "input": action.get("input"),
                           "instance": action.get("instanceId"), "retry": action.get("retryOptions"),
                           "attempt": 1})
        elif kind == ActionType.CREATE_TIMER:
            timer_id = self.next_id()
            fire_at = _parse_time(action["fireAt"])
            self.commit.history.append(event(H.TIMER_CREATED, self.now, timer_id, FireAt=action["fireAt"]))
            self.commit.messages.append((instance_id, event(H.TIMER_FIRED, self.now, TimerId=timer_id,
                                                            FireAt=action["fireAt"]), fire_at))
        elif kind in (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY):
            task_id = self.next_id()
            _, name, key = str(action["instanceId"]).split("@", 2)
            request_id = str(uuid.uuid4())
            call = kind == ActionType.CALL_ENTITY
            message = {"id": request_id, "op": action["operation"], "signal": not call, "input": action.get("input")}
            self.commit.history.append(event(H.EVENT_SENT, self.now, task_id, InstanceId=action["instanceId"],
                                             Name="op", Input=json.dumps(message)))
            # Queued as the client's signal webhook queues its body: the serialized input as a JSON string.
            operation_input = json.dumps(action["input"]) if action.get("input") is not None else None
            self.commit.entity_ops.append((name.lower(), key, action["operation"], operation_input, request_id))
            if call:
                self.commit.entity_calls.append(request_id)
        elif kind == ActionType.CONTINUE_AS_NEW:
            self.next_id()
            self.commit.new_execution = (uuid.uuid4().hex, action.get("input"))
        elif kind == ActionType.CALL_HTTP:
            self.fail_soon(self.next_id(), "durable HTTP calls (call_http) are not supported by the local host")
        # WaitForExternalEvent needs nothing: the SDK matches EventRaised messages by name.

    # --- outcome ---------------------------------------------------------------------------------------

    def finish(self, status: str, output: Any, reason: str | None = None) -> None:
        c = self.commit
        c.status, c.output = status, json.dumps(output)
        result = {"Result": c.output} if status == "Completed" else {"Reason": reason, "Details": None}
        c.history.append(event(H.EXECUTION_TERMINATED if status == "Terminated" else H.EXECUTION_COMPLETED,
                               self.now, OrchestrationStatus=status, **result))
        parent, task = self.instance.parent_instance, self.instance.parent_task
        if parent is not None and task is not None:
            kind = H.SUB_ORCHESTRATION_INSTANCE_COMPLETED if status == "Completed" else \
                H.SUB_ORCHESTRATION_INSTANCE_FAILED
            c.messages.append((parent, event(kind, self.now, TaskScheduledId=task, **result), self.now))


LEASE = "orchestrations"  # the singleton lease under which one host instance runs every orchestration


class OrchestrationHost:
    """Runs the app's orchestrator and activity functions from `host.db`: one episode at a time per instance.

    With several host instances over one data folder (`aos serve --instances N`), every instance takes in
    starts, events and terminations (they are rows in `host.db`), but only the one holding the singleton lease
    `orchestrations` runs episodes and activities, and each of its commits checks, in its transaction, that it
    still holds it: an instance that lost the lease (paused, then taken over) commits nothing, and the new holder
    replays from the committed history.
    """

    def __init__(self, functions: list[FunctionSpec], db: SqliteDatabase, invoker: Invoker, clock: Clock, *,
                 max_parallel: int = 32, on_entity_work: Callable[[list[tuple[str, str]]], None] | None = None,
                 extra_inputs: Callable[[FunctionSpec], dict[str, Any]] | None = None,
                 leases: Leases | None = None) -> None:
        def named(kind: str, key: str) -> dict[str, FunctionSpec]:
            return {str(f.trigger.get(key) or f.name).lower(): f for f in functions if f.trigger_type == kind}

        self.orchestrators = named("orchestrationTrigger", "orchestration")
        self.activities = named("activityTrigger", "activity")
        self.db, self._invoker, self._clock = db, invoker, clock
        self._max_parallel = max_parallel
        self._on_entity_work = on_entity_work
        self._extra_inputs = extra_inputs or (lambda spec: {})  # an activity's durableClient binding
        self._leases = leases
        if leases is not None:
            leases.want(LEASE)  # before the host's first lease round, so a lone instance leads from its start
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._work_running: dict[int, asyncio.Task[None]] = {}  # activity work item seq -> its task
        self._wake = asyncio.Event()
        self._work_wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.episodes = 0
        self.activities_run = 0

    def orchestrator(self, name: str) -> FunctionSpec | None:
        return self.orchestrators.get(name.lower())

    def activity(self, name: str) -> FunctionSpec | None:
        return self.activities.get(name.lower())

    def now(self) -> float:
        return self._clock.now().timestamp()

    async def start(self) -> None:
        if self.orchestrators or self.activities:
            self._loops = [asyncio.create_task(self._pump(), name="orchestrations"),
                           asyncio.create_task(self._work_pump(), name="activities")]

    async def stop(self) -> None:
        tasks = [*self._loops, *self._running.values(), *self._work_running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self, instance_ids: list[str] | None = None) -> None:
        for instance_id in instance_ids or []:
            self._schedule(instance_id)
        self._wake.set()
        self._work_wake.set()

    def idle(self) -> bool:
        return not self._running and not self._work_running

    # --- client operations (the webhooks) ----------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str | None, input_json: str | None) -> str:
        spec = self.orchestrator(name)
        if spec is None:
            raise LookupError(f"no orchestrator function named {name!r} (orchestrators: "
                              f"{', '.join(sorted(self.orchestrators)) or 'none'})")
        instance_id = instance_id or uuid.uuid4().hex
        execution_id = uuid.uuid4().hex
        now = self.now()
        new = odb.NewInstance(instance_id, spec.name, execution_id, input_json,
                              started_event(spec.name, instance_id, execution_id, input_json, now))
        await self.db.write(lambda c: odb.create(c, new, now))
        self.wake([instance_id])
        return instance_id

    async def send(self, instance_id: str, message: dict[str, Any]) -> None:
        now = self.now()
        await self.db.write(lambda c: odb.send_to_running(c, instance_id, message, now))
        self.wake([instance_id])

    async def raise_event(self, instance_id: str, name: str, input_json: str | None) -> None:
        await self.send(instance_id, event(H.EVENT_RAISED, self.now(), Name=name, Input=input_json))

    async def terminate(self, instance_id: str, reason: str | None) -> None:
        await self.send(instance_id, event(H.EXECUTION_TERMINATED, self.now(), Input=json.dumps(reason)))

    # --- the orchestrator: one episode at a time per instance --------------------------------------------

    def _leading(self) -> bool:
        return self._leases is None or self._leases.usable(LEASE)

    async def _lead(self) -> None:
        if self._leases is not None:
            await self._leases.wait_for(LEASE)

    def _fence(self, conn: Any) -> None:
        # Inside the commit's transaction: only the lease holder writes history and results.
        if self._leases is not None and not holds(conn, LEASE, self._leases.instance_id, time.time()):
            raise LeaseLost(f"{self._leases.instance_id} no longer holds the {LEASE} lease")

    def _schedule(self, instance_id: str) -> None:
        if not self._leading():
            return  # the lease holder polls the inbox and runs it
        if instance_id in self._running:
            self._dirty.add(instance_id)
            return
        self._running[instance_id] = asyncio.create_task(self._drain(instance_id), name=f"orchestration:{instance_id}")

    async def _pump(self) -> None:
        while True:
            await self._lead()
            self._wake.clear()
            try:
                ids, next_due = await self.db.read(lambda c: odb.due_instances(c, self.now()))
            except Exception:
                log.exception("orchestrations: cannot read the inbox")
                ids, next_due = [], None
            for instance_id in ids:
                self._schedule(instance_id)
            wait = _POLL if next_due is None else min(_POLL, max(0.01, next_due - self.now()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _drain(self, instance_id: str) -> None:
        delay = 0.5
        try:
            while True:
                self._dirty.discard(instance_id)
                try:
                    ran = await self._episode(instance_id)
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except odb.InstanceMissing:
                    ran = True  # purged or restarted while it ran: look again
                except LeaseLost:
                    return  # another instance runs orchestrations now
                except Exception:
                    log.exception("orchestration %s: episode failed; retrying in %.1fs", instance_id, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
                    continue
                if not ran and instance_id not in self._dirty:
                    return
        finally:
            self._running.pop(instance_id, None)

    async def _episode(self, instance_id: str) -> bool:
        now = self.now()
        instance, past, messages = await self.db.read(lambda c: odb.load_episode(c, instance_id, now))
        if not messages:
            return False
        if instance is None or instance.status in odb.FINISHED:  # late results, events for a finished instance
            seqs = [m.seq for m in messages]
            await self.db.write(lambda c: odb.drop_messages(c, seqs))
            return True
        episode = Episode(self, instance, now)
        terminate = next((m for m in messages if m.event["EventType"] == H.EXECUTION_TERMINATED), None)
        if terminate is not None:
            episode.commit.consumed = [m.seq for m in messages]
            episode.commit.history.append(event(H.ORCHESTRATOR_STARTED, now))
            episode.finish("Terminated", json.loads(terminate.event.get("Input") or "null"),
                           reason=f"terminated: {json.loads(terminate.event.get('Input') or 'null')}")
        else:
            batch = self._batch(episode, messages, fresh=not past)
            if not batch:
                return False
            await self._run_orchestrator(episode, past, batch)
        def commit(c: Any) -> None:
            self._fence(c)
            odb.commit_episode(c, episode.commit, now)

        await self.db.write(commit)
        self.episodes += 1
        self._after_commit(episode.commit)
        return True

    def _batch(self, episode: Episode, messages: list[odb.Message], *, fresh: bool) -> list[odb.Message]:
        if fresh:  # the execution's first episode: ExecutionStarted goes first, whatever was raised before it
            messages = sorted(messages, key=lambda m: m.event["EventType"] != H.EXECUTION_STARTED)
            if messages[0].event["EventType"] != H.EXECUTION_STARTED:
                return []
        batch: list[odb.Message] = []
        for message in messages:
            if episode.retry_related(message.event):
                return batch or [message]
            batch.append(message)
        return batch

    async def _run_orchestrator(self, episode: Episode, past: list[dict[str, Any]],
                                batch: list[odb.Message]) -> None:
        commit, now, instance = episode.commit, episode.now, episode.instance
        commit.consumed = [m.seq for m in batch]
        commit.history.append(event(H.ORCHESTRATOR_STARTED, now))
        for message in batch:
            commit.history.append(message.event)
            if episode.retry_related(message.event):
                episode.retry_step(message.event)
            elif message.event["EventType"] in (H.TASK_COMPLETED, H.SUB_ORCHESTRATION_INSTANCE_COMPLETED):
                episode.tasks.pop(str(message.event.get("TaskScheduledId")), None)
        spec = self.orchestrator(instance.name)
        if spec is None:
            episode.finish("Failed", f"no orchestrator function named {instance.name!r}",
                           reason=f"no orchestrator function named {instance.name!r}")
            return
        context = {"history": [{**e, "IsPlayed": True} for e in past] + commit.history,
                   "input": instance.input, "instanceId": instance.instance_id, "isReplaying": bool(past),
                   "parentInstanceId": instance.parent_instance, "upperSchemaVersion": ReplaySchema.V3.value}
        error: str | None = None
        try:
            raw = await self._invoker.invoke(spec, {spec.trigger["name"]: json.dumps(context)}, quiet=True)
            state = json.loads(raw)
        except Exception as exc:
            message, _, payload = str(exc).partition(_OUT_OF_PROC)
            state = json.loads(payload) if payload else {"isDone": False, "actions": []}
            error = message or type(exc).__name__
        flat = list(flatten(state.get("actions") or []))
        for action in flat[int(episode.progress["actions"]):]:
            episode.apply(action)
        episode.progress["actions"] = len(flat)
        custom = state.get("customStatus")
        commit.custom_status = json.dumps(custom) if custom is not None else commit.custom_status
        commit.history.append(event(H.ORCHESTRATOR_COMPLETED, now))
        if error is not None:
            episode.finish("Failed", error, reason=error)
        elif commit.new_execution is not None:
            execution_id, new_input = commit.new_execution
            commit.messages.append((instance.instance_id, started_event(
                instance.name, instance.instance_id, execution_id, new_input, now), now))
        elif state.get("isDone"):
            episode.finish("Completed", state.get("output"))

    def _after_commit(self, commit: odb.EpisodeCommit) -> None:
        woken = {m[0] for m in commit.messages if m[2] <= self.now()} | {c.instance_id for c in commit.children}
        self.wake(sorted(woken))
        if commit.entity_ops and self._on_entity_work is not None:
            self._on_entity_work(sorted({(op[0], op[1]) for op in commit.entity_ops}))

    # --- activities --------------------------------------------------------------------------------------

    async def _work_pump(self) -> None:
        while True:
            await self._lead()
            self._work_wake.clear()
            free = self._max_parallel - len(self._work_running)
            if free > 0:
                try:
                    items = await self.db.read(functools.partial(odb.pending_work, exclude=set(self._work_running),
                                                                 limit=free))
                except Exception:
                    log.exception("orchestrations: cannot read the activity work")
                    items = []
                for item in items:
                    self._work_running[item.seq] = asyncio.create_task(self._run_activity(item),
                                                                       name=f"activity:{item.name}")
            try:
                await asyncio.wait_for(self._work_wake.wait(), _POLL)
            except TimeoutError:
                pass

    async def _run_activity(self, item: odb.WorkItem) -> None:
        try:
            outcome = await self._activity_outcome(item)
            now = self.now()
            def complete(c: Any) -> bool:
                self._fence(c)
                return odb.complete_work(c, item, outcome, now)

            delivered = await self.db.write(complete)
            self.activities_run += 1
            if delivered:
                self.wake([item.instance_id])
        except asyncio.CancelledError:
            raise
        except LeaseLost:  # the lease moved while it ran: the new holder runs the work item again
            log.warning("activity %s of %s: the orchestrations lease moved; not recorded here", item.name,
                        item.instance_id)
        except Exception:  # storage refused the result: the work item stays and runs again
            log.exception("activity %s of %s: could not record its result", item.name, item.instance_id)
            await asyncio.sleep(0.5)
        finally:
            self._work_running.pop(item.seq, None)
            self._work_wake.set()

    async def _activity_outcome(self, item: odb.WorkItem) -> dict[str, Any]:
        spec = self.activity(item.name)
        try:
            if spec is None:
                raise LookupError(f"no activity function named {item.name!r}")
            # As the Python worker does: the input decoded by the activity trigger's converter, the return
            # value encoded by it.
            value = ActivityTriggerConverter.decode(meta.Datum(item.input or "null", "json"), trigger_metadata=None)
            result = await self._invoker.invoke(spec, {spec.trigger["name"]: value, **self._extra_inputs(spec)},
                                                quiet=True)
            encoded = ActivityTriggerConverter.encode(result, expected_type=None).value
        except Exception as exc:
            return event(H.TASK_FAILED, self.now(), TaskScheduledId=item.task_id, Reason=str(exc) or type(exc).__name__,
                         Details=f"{type(exc).__name__}: {exc}")
        return event(H.TASK_COMPLETED, self.now(), TaskScheduledId=item.task_id, Result=encoded)

    # --- entity responses --------------------------------------------------------------------------------

    def entity_replies(self, conn: Any, ops: list[Any], results: list[dict[str, Any]]) -> list[str]:
        """Inside an entity batch's commit: responses to the operations orchestrators called."""
        replies = []
        for op, result in zip(ops, results, strict=False):
            response: dict[str, Any] = {"result": result.get("result") or "null"}
            if result.get("isError"):
                response["exceptionType"] = "System.Exception"
            replies.append((op.request_id, event(H.EVENT_RAISED, self.now(), Name=op.request_id,
                                                 Input=json.dumps(response))))
        return odb.entity_replies(conn, replies, self.now())

"""The handler of the reasoning-steps operation (declared in `services.context.operations`).

`GET /api/agents/{agent_id}/turns/{event_id}`: the steps of the model-and-tools loops the agent ran while
handling that event (services.context.turns), in order: the task, each model turn, each tool result, a stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from aos_core import api
from services.context.turns import read_turns

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem

_MAX_STEPS = 1000


class TurnStep(BaseModel):
    """One committed step; `kind` says which fields follow (task: system, user, tools; model: result;
    tool: call, status, content, source, idempotency_key; stop: reason, detail)."""

    model_config = ConfigDict(extra="allow")

    seq: int
    kind: str
    at: str
    loop: str
    event_id: str


class AgentTurns(BaseModel):
    agent_id: str
    event_id: str
    steps: list[TurnStep]


async def get_turns(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    agent_id = api.agent_id_param(request)
    event_id = api.path_id(request, "event_id")
    await aos.registry.require(agent_id)  # 404 for an unknown agent
    steps = await read_turns(aos.store, agent_id, event_id, limit=_MAX_STEPS)
    body = AgentTurns(agent_id=agent_id, event_id=event_id, steps=[TurnStep.model_validate(s) for s in steps])
    return api.ApiResponse(200, body.model_dump(mode="json"))

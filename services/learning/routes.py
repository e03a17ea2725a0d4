"""The handlers of the feedback operations (declared in `services.learning.operations`).

`POST /api/decisions/{decision_id}/feedback` (thumbs, a score or a correction) and `GET` of the same route;
the DPO dataset builder turns decisions plus this feedback into preference pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from aos_core import api
from services.governance.decisions import DecisionLog
from services.learning.feedback import Feedback, FeedbackService, InvalidFeedbackError

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem


class FeedbackList(BaseModel):
    feedback: list[Feedback]


def _service(aos: AgentOperatingSystem) -> FeedbackService:
    return FeedbackService(aos.store, DecisionLog(aos.store, audit=aos.audit, clock=aos.clock), clock=aos.clock,
                           ids=aos.ids)


async def post_feedback(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    decision_id = api.path_id(request, "decision_id")
    body = api.json_body(request)
    if not isinstance(body, dict):
        raise api.Problem(400, "Invalid request", "feedback must be a JSON object")
    try:
        feedback = await _service(aos).submit(decision_id, body, actor=caller.name)
    except ValidationError as exc:
        raise api.invalid(exc, "feedback") from None
    except InvalidFeedbackError as exc:
        raise api.Problem(400, "Invalid request", str(exc)) from None
    return api.ApiResponse(201, feedback.model_dump(mode="json"))


async def list_feedback(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    decision_id = api.path_id(request, "decision_id")
    await DecisionLog(aos.store, clock=aos.clock).get(decision_id)  # 404 for an unknown decision
    items = await _service(aos).for_decision(decision_id)
    return api.ApiResponse(200, FeedbackList(feedback=items).model_dump(mode="json"))

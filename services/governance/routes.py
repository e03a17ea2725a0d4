"""The handlers of the risk and decision operations (declared in `services.governance.operations`):
`GET/POST /api/risks`, `GET/PATCH/DELETE /api/risks/{risk_id}` (DELETE closes a risk: risks are never erased,
their history stays), `GET /api/decisions` and `GET /api/decisions/{decision_id}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from aos_core import api
from services.governance.decisions import DecisionLog, DecisionRecord
from services.governance.risks import Risk, RiskCreate, RiskRegistry, RiskUpdate

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem


class RiskList(BaseModel):
    risks: list[Risk]


class DecisionList(BaseModel):
    decisions: list[DecisionRecord]


def _risks(aos: AgentOperatingSystem) -> RiskRegistry:
    return RiskRegistry(aos.store, clock=aos.clock, ids=aos.ids, audit=aos.audit)


def _decisions(aos: AgentOperatingSystem) -> DecisionLog:
    return DecisionLog(aos.store, audit=aos.audit, clock=aos.clock, ids=aos.ids)


def _limit(request: api.ApiRequest) -> int:
    return api.int_param(request, "limit", 100, 1, 1000)


async def list_risks(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    raw_score = request.query.get("min_score")
    min_score = api.int_param(request, "min_score", 1, 1, 25) if raw_score is not None else None
    risks = await _risks(aos).list(status=request.query.get("status") or None,
                                   owner=request.query.get("owner") or None, min_score=min_score,
                                   after=request.query.get("after") or None, limit=_limit(request))
    return api.ApiResponse(200, RiskList(risks=risks).model_dump(mode="json"))


async def create_risk(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    data: RiskCreate = api.parse(RiskCreate, request, "risk")
    risk = await _risks(aos).create(data, actor=caller.name)
    return api.ApiResponse(201, risk.model_dump(mode="json"), {"Location": f"/api/risks/{risk.id}"})


async def get_risk(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    risk = await _risks(aos).get(api.path_id(request, "risk_id"))
    return api.ApiResponse(200, risk.model_dump(mode="json"))


async def update_risk(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    risk_id = api.path_id(request, "risk_id")
    patch: RiskUpdate = api.parse(RiskUpdate, request, "risk update")
    risk = await _risks(aos).update(risk_id, patch, actor=caller.name)
    return api.ApiResponse(200, risk.model_dump(mode="json"))


async def close_risk(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    risk_id = api.path_id(request, "risk_id")
    resolution = (request.query.get("resolution") or "").strip() or f"closed over HTTP by {caller.name}"
    risk = await _risks(aos).close(risk_id, actor=caller.name, resolution=resolution[:2000])
    return api.ApiResponse(200, risk.model_dump(mode="json"))


async def list_decisions(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    decisions = await _decisions(aos).list(agent_id=request.query.get("agent_id") or None,
                                           after=request.query.get("after") or None, limit=_limit(request))
    return api.ApiResponse(200, DecisionList(decisions=decisions).model_dump(mode="json"))


async def get_decision(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    decision = await _decisions(aos).get(api.path_id(request, "decision_id"))
    return api.ApiResponse(200, decision.model_dump(mode="json"))

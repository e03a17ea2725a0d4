"""HTTP operations for risks and decisions, added to the host-neutral API (`aos_core.api`) on import.

`function_app.py` imports this module and maps its routes to these operations:
`GET/POST /api/risks`, `GET/PATCH/DELETE /api/risks/{risk_id}` (DELETE closes a risk: risks are never erased,
their history stays), `GET /api/decisions` and `GET /api/decisions/{decision_id}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from aos_core import api
from aos_core import api_models as m
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


api.register_operations({
    "list_risks": api.Operation(list_risks, "reader"),
    "create_risk": api.Operation(create_risk, "operator", has_body=True),
    "get_risk": api.Operation(get_risk, "reader"),
    "update_risk": api.Operation(update_risk, "operator", has_body=True),
    "close_risk": api.Operation(close_risk, "operator"),
    "list_decisions": api.Operation(list_decisions, "reader"),
    "get_decision": api.Operation(get_decision, "reader"),
})

_RISK_ID = {"name": "risk_id", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
_PAGE = [{"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
         {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}]
m.register_paths({
    "/api/risks": {
        "get": {"operationId": "list_risks", "summary": "Risks, filtered by status, owner or minimum score",
                "parameters": [*_PAGE, {"name": "status", "in": "query", "required": False,
                                        "schema": {"type": "string"}},
                               {"name": "owner", "in": "query", "required": False, "schema": {"type": "string"}},
                               {"name": "min_score", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 25}}],
                "responses": {**m.ok(200, "risks", RiskList), **m.problems(400, 401, 403)}},
        "post": {"operationId": "create_risk", "summary": "Raise a risk", "requestBody": m.json_body(RiskCreate),
                 "responses": {**m.links(m.ok(201, "raised", Risk), 201, **{
                     name: (op, {"risk_id": "$response.body#/id"}) for name, op in (
                         ("GetRisk", "get_risk"), ("UpdateRisk", "update_risk"), ("CloseRisk", "close_risk"))}),
                               **m.problems(400, 401, 403, 409, 413, 422)}}},
    "/api/risks/{risk_id}": {
        "parameters": [_RISK_ID],
        "get": {"operationId": "get_risk", "summary": "One risk with its history",
                "responses": {**m.ok(200, "the risk", Risk), **m.problems(400, 401, 403, 404)}},
        "patch": {"operationId": "update_risk", "summary": "Change a risk (each change is kept in its history)",
                  "requestBody": m.json_body(RiskUpdate),
                  "responses": {**m.ok(200, "updated", Risk), **m.problems(400, 401, 403, 404, 409, 413, 422)}},
        "delete": {"operationId": "close_risk", "summary": "Close a risk (its record and history stay)",
                   "parameters": [{"name": "resolution", "in": "query", "required": False,
                                   "schema": {"type": "string", "maxLength": 2000}}],
                   "responses": {**m.ok(200, "closed", Risk), **m.problems(400, 401, 403, 404, 409)}}},
    "/api/decisions": {"get": {
        "operationId": "list_decisions", "summary": "Agent decisions, newest id order, by agent",
        "parameters": [*_PAGE, {"name": "agent_id", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {**m.links(m.ok(200, "decisions", DecisionList), 200, **{
            name: (op, {"decision_id": "$response.body#/decisions/0/id"}) for name, op in (
                ("GetFirstDecision", "get_decision"), ("RateFirstDecision", "post_feedback"))}),
                      **m.problems(400, 401, 403)}}},
    "/api/decisions/{decision_id}": {"get": {
        "operationId": "get_decision", "summary": "One decision: inputs, options, rationale, confidence, outcome",
        "parameters": [{"name": "decision_id", "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
        "responses": {**m.links(m.ok(200, "the decision", DecisionRecord), 200, **{
            name: (op, {"decision_id": "$response.body#/id"}) for name, op in (
                ("RateDecision", "post_feedback"), ("ListFeedback", "list_feedback"))}),
                      **m.problems(400, 401, 403, 404)}}},
}, [Risk, RiskCreate, RiskUpdate, RiskList, DecisionRecord, DecisionList], requests=(RiskCreate, RiskUpdate))

"""The governance area's HTTP operations: risks and decisions (handlers in `services.governance.routes`).

`DELETE /api/risks/{risk_id}` closes a risk: risks are never erased, their history stays.
"""

from __future__ import annotations

from aos_core.api_operations import LIMIT, record_id
from aos_core.operations import HttpOperation, Param, Reply

_ROUTES = "services.governance.routes:"
_RISK = "services.governance.risks:Risk"
_DECISION = "services.governance.decisions:DecisionRecord"
_RISK_ID = record_id("risk_id")
_AFTER = Param("after")
_RISK_LINKS = {name: (op, {"risk_id": "$response.body#/id"}) for name, op in (
    ("GetRisk", "get_risk"), ("UpdateRisk", "update_risk"), ("CloseRisk", "close_risk"))}

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "list_risks", "risks", ("GET",), "reader", _ROUTES + "list_risks",
        "Risks, filtered by status, owner or minimum score",
        params=(_AFTER, LIMIT, Param("status"), Param("owner"),
                Param("min_score", schema={"type": "integer", "minimum": 1, "maximum": 25})),
        replies={200: Reply("risks", _ROUTES + "RiskList")}, problems=(400, 401, 403)),
    HttpOperation(
        "create_risk", "risks", ("POST",), "operator", _ROUTES + "create_risk", "Raise a risk",
        body="services.governance.risks:RiskCreate", has_body=True,
        replies={201: Reply("raised", _RISK, links=_RISK_LINKS)}, problems=(400, 401, 403, 409, 413, 422)),
    HttpOperation(
        "get_risk", "risks/{risk_id}", ("GET",), "reader", _ROUTES + "get_risk", "One risk with its history",
        params=(_RISK_ID,), replies={200: Reply("the risk", _RISK)}, problems=(400, 401, 403, 404)),
    HttpOperation(
        "update_risk", "risks/{risk_id}", ("PATCH",), "operator", _ROUTES + "update_risk",
        "Change a risk (each change is kept in its history)", params=(_RISK_ID,),
        body="services.governance.risks:RiskUpdate", has_body=True,
        replies={200: Reply("updated", _RISK)}, problems=(400, 401, 403, 404, 409, 413, 422)),
    HttpOperation(
        "close_risk", "risks/{risk_id}", ("DELETE",), "operator", _ROUTES + "close_risk",
        "Close a risk (its record and history stay)",
        params=(_RISK_ID, Param("resolution", schema={"type": "string", "maxLength": 2000})),
        replies={200: Reply("closed", _RISK)}, problems=(400, 401, 403, 404, 409)),
    HttpOperation(
        "list_decisions", "decisions", ("GET",), "reader", _ROUTES + "list_decisions",
        "Agent decisions, newest id order, by agent", params=(_AFTER, LIMIT, Param("agent_id")),
        replies={200: Reply("decisions", _ROUTES + "DecisionList", links={
            name: (op, {"decision_id": "$response.body#/decisions/0/id"}) for name, op in (
                ("GetFirstDecision", "get_decision"), ("RateFirstDecision", "post_feedback"))})},
        problems=(400, 401, 403)),
    HttpOperation(
        "get_decision", "decisions/{decision_id}", ("GET",), "reader", _ROUTES + "get_decision",
        "One decision: inputs, options, rationale, confidence, outcome", params=(record_id("decision_id"),),
        replies={200: Reply("the decision", _DECISION, links={
            name: (op, {"decision_id": "$response.body#/id"}) for name, op in (
                ("RateDecision", "post_feedback"), ("ListFeedback", "list_feedback"))})},
        problems=(400, 401, 403, 404)),
)

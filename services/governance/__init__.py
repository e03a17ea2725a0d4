"""Governance: the tamper-evident audit log, policies, the risk registry and decision records."""

from __future__ import annotations

from services.governance.audit import SqliteAuditLog
from services.governance.chain import ChainVerifier, InvalidAuditEntry, verify_entries
from services.governance.decisions import DecisionCreate, DecisionLog, DecisionOption, DecisionRecord
from services.governance.factory import open_audit_log
from services.governance.policy import PolicyDecision, PolicyDenied, PolicyEngine, PolicyRequest
from services.governance.risks import Risk, RiskCreate, RiskRegistry, RiskUpdate

__all__ = [
    "ChainVerifier",
    "DecisionCreate",
    "DecisionLog",
    "DecisionOption",
    "DecisionRecord",
    "InvalidAuditEntry",
    "PolicyDecision",
    "PolicyDenied",
    "PolicyEngine",
    "PolicyRequest",
    "Risk",
    "RiskCreate",
    "RiskRegistry",
    "RiskUpdate",
    "SqliteAuditLog",
    "open_audit_log",
    "verify_entries",
]

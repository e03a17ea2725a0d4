"""Governance: the tamper-evident audit log, policies, the risk registry and decision records."""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "SqliteAuditLog": "services.governance.audit",
    "ChainVerifier": "services.governance.chain",
    "InvalidAuditEntry": "services.governance.chain",
    "verify_entries": "services.governance.chain",
    "DecisionCreate": "services.governance.decisions",
    "DecisionLog": "services.governance.decisions",
    "DecisionOption": "services.governance.decisions",
    "DecisionRecord": "services.governance.decisions",
    "open_audit_log": "services.governance.factory",
    "PolicyDecision": "services.governance.policy",
    "PolicyDenied": "services.governance.policy",
    "PolicyEngine": "services.governance.policy",
    "PolicyRequest": "services.governance.policy",
    "Risk": "services.governance.risks",
    "RiskCreate": "services.governance.risks",
    "RiskRegistry": "services.governance.risks",
    "RiskUpdate": "services.governance.risks",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)

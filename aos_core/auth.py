"""Who is calling, and what their app roles let them do.

Function keys are checked by the Functions host before a function runs, so a request that reaches us with
auth level FUNCTION carried a valid key. On top of that, App Service authentication forwards the signed-in
principal as `X-MS-CLIENT-PRINCIPAL` (base64 JSON with its claims); its app roles decide. A caller with a key
and no principal gets `auth.key_roles` (default `admin`: the key is the owner's secret).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aos_core.config import AuthSettings

PRINCIPAL_HEADER = "x-ms-client-principal"
ROLES = ("reader", "operator", "admin")  # each role includes the ones before it
_ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


class AuthError(ValueError):
    """The caller's credentials could not be read (a malformed principal header): a 401."""


@dataclass(frozen=True, slots=True)
class Caller:
    name: str  # who, for audit: the principal's name, or "function-key" / "anonymous"
    roles: frozenset[str]
    via: str  # "principal", "key" or "anonymous"

    def can(self, role: str) -> bool:
        """True if the caller holds `role` or a role above it."""
        needed = ROLES.index(role)
        return any(r in ROLES and ROLES.index(r) >= needed for r in self.roles)


def _trusted(settings: AuthSettings) -> bool:
    if settings.trust_principal_header is not None:
        return settings.trust_principal_header
    return os.environ.get("WEBSITE_AUTH_ENABLED", "").lower() == "true"


def decode_principal(header: str) -> dict[str, Any]:
    """The JSON object of an `X-MS-CLIENT-PRINCIPAL` header; AuthError if it is not one with a claims list."""
    try:
        data = json.loads(base64.b64decode(header, validate=False))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError):
        # RecursionError: a few kilobytes of nested brackets exhaust the decoder; still the caller's bad input
        raise AuthError("X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims", []), list):
        raise AuthError("X-MS-CLIENT-PRINCIPAL must be a JSON object with a claims list")
    return data


def parse_principal(header: str) -> Caller:
    """Decode an App Service `X-MS-CLIENT-PRINCIPAL` header into a Caller with its app roles."""
    data = decode_principal(header)
    role_type = data.get("role_typ") or "roles"
    name_type = data.get("name_typ") or "name"
    roles: set[str] = set()
    name = ""
    for claim in data.get("claims", []):
        if not isinstance(claim, dict):
            continue
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(val, str):
            continue
        if typ == role_type or typ in _ROLE_CLAIMS:
            roles.add(val)
        elif typ == name_type and not name:
            name = val
    return Caller(name=name or str(data.get("userId") or "principal"), roles=frozenset(roles), via="principal")


def identify(headers: Mapping[str, str], settings: AuthSettings, *, anonymous: bool = False) -> Caller:
    """The caller of a request with these (lower-cased) headers.

    `anonymous`: the route does not require a key, so without a principal the caller has no roles.
    """
    header = headers.get(PRINCIPAL_HEADER)
    if header and _trusted(settings):
        return parse_principal(header)
    if anonymous:
        return Caller(name="anonymous", roles=frozenset(), via="anonymous")
    roles = frozenset(r.strip() for r in settings.key_roles.split(",") if r.strip())
    return Caller(name="function-key", roles=roles, via="key")

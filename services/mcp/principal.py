"""Who is calling an MCP tool, and what that lets them do.

Over HTTP the principal comes from the request (`principal_from_headers`) and travels in the ASGI scope; over
an in-process session (tests, agents talking to the OS in-process) it is the one set with `acting_as`. A
caller with neither gets nothing: access fails closed.

Rules (DESIGN: roles reader < operator < admin):
- A caller *acting as an agent* reads and writes that agent's context and the contexts whose owners granted
  it access; its roles do not widen that. It may also list and discover agents, read their status and send
  events and messages (as that agent).
- Otherwise roles decide: `reader` lists agents and reads status, `operator` also reads every context, sends
  events and verifies the audit chain, `admin` also writes every context and changes grants.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aos_core.auth import PRINCIPAL_HEADER, ROLES, AuthError, Caller, decode_principal, identify
from aos_core.config import AuthSettings
from aos_core.errors import AOSError
from aos_core.events import validate_id

AGENT_HEADER = "x-aos-agent"  # an admin (or key holder) narrowing itself to one agent
AGENT_CLAIMS = ("aos_agent", "agent_id")  # a principal claim that makes the caller that agent
SCOPE_KEY = "aos.principal"  # where the HTTP app leaves the principal in the ASGI scope


class AccessDeniedError(AOSError, PermissionError):
    """The caller may not do this; nothing was read or changed."""


@dataclass(frozen=True, slots=True)
class McpPrincipal:
    """A caller: a name for audit, app roles, and the agent it acts as (None for people and operators)."""

    name: str
    roles: frozenset[str] = frozenset()
    agent_id: str | None = None

    def __post_init__(self) -> None:
        if self.agent_id is not None:
            validate_id(self.agent_id, "agent id")

    @classmethod
    def agent(cls, agent_id: str) -> McpPrincipal:
        """A caller acting as `agent_id`."""
        return cls(name=f"agent:{agent_id}", agent_id=agent_id)

    @classmethod
    def with_roles(cls, name: str, *roles: str) -> McpPrincipal:
        return cls(name=name, roles=frozenset(roles))

    @classmethod
    def from_caller(cls, caller: Caller, agent_id: str | None = None) -> McpPrincipal:
        return cls(name=caller.name, roles=caller.roles, agent_id=agent_id)

    def can(self, role: str) -> bool:
        """True if the caller holds `role` or one above it. An agent caller holds no roles."""
        if self.agent_id is not None:
            return False
        needed = ROLES.index(role)
        return any(r in ROLES and ROLES.index(r) >= needed for r in self.roles)

    def require(self, role: str, what: str) -> None:
        if not self.can(role):
            held = f"acts as agent {self.agent_id!r}" if self.agent_id else (
                f"has {', '.join(sorted(self.roles)) or 'no roles'}")
            raise AccessDeniedError(f"{what} needs the {role!r} role; {self.name} {held}")


# --- where the principal of the current call comes from ------------------------------------------------

_current: ContextVar[McpPrincipal | None] = ContextVar("aos_mcp_principal", default=None)


@contextmanager
def acting_as(principal: McpPrincipal) -> Iterator[McpPrincipal]:
    """Make `principal` the caller of MCP sessions opened inside this block (in-process transports)."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def principal_of(ctx: Any) -> McpPrincipal:
    """The caller of the MCP request behind `ctx` (an `mcp.server.mcpserver.Context`, or the low-level
    `ServerRequestContext` a middleware gets); AccessDeniedError if none."""
    request = getattr(ctx, "request", None)
    try:
        request = ctx.request_context.request
    except (AttributeError, ValueError):
        pass
    scope = getattr(request, "scope", None)
    found = scope.get(SCOPE_KEY) if isinstance(scope, Mapping) else None
    if isinstance(found, McpPrincipal):
        return found
    current = _current.get()
    if current is None:
        raise AccessDeniedError("no authenticated caller: call through /api/mcp or inside acting_as(...)")
    return current


def principal_from_headers(headers: Mapping[str, str], settings: AuthSettings,
                           caller: Caller | None = None) -> McpPrincipal:
    """The principal of an HTTP request with these (lower-cased) headers.

    `caller` is what the host already established (None: `aos_core.auth.identify`). A trusted principal header
    with an `aos_agent` claim makes the caller that agent. `X-AOS-Agent` narrows an admin to one agent; from
    anyone else it is refused, since it would widen a reader into an agent that writes its own context.
    """
    caller = caller or identify(headers, settings)
    # via == "principal": identify() trusted the header (App Service authentication is in front).
    claimed = _agent_claim(headers.get(PRINCIPAL_HEADER)) if caller.via == "principal" else None
    if claimed is not None:
        return McpPrincipal.from_caller(caller, validate_id(claimed, "aos_agent claim"))
    requested = headers.get(AGENT_HEADER)
    if requested:
        if not caller.can("admin"):
            raise AccessDeniedError(f"{AGENT_HEADER} needs the 'admin' role; {caller.name} may not act as an agent")
        return McpPrincipal.from_caller(caller, validate_id(requested.strip(), AGENT_HEADER))
    return McpPrincipal.from_caller(caller)


def _agent_claim(header: str | None) -> str | None:
    if not header:
        return None
    try:
        data = decode_principal(header)
    except AuthError:
        return None  # identify() already refused a malformed header
    for claim in data.get("claims", []):
        if isinstance(claim, dict) and claim.get("typ") in AGENT_CLAIMS and isinstance(claim.get("val"), str):
            return claim["val"]
    return None

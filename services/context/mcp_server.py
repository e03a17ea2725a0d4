"""The MCP face of ContextMCPServer: each agent's context as MCP resources and tools, scoped to the caller.

Resources (JSON text):
  context://agents/{agent_id}                    the context: version, state, memory count
  context://agents/{agent_id}/memory             the latest memory entries
  context://agents/{agent_id}/history/{version}  the state as of a past version
Tools: get_context, update_context (JSON merge patch with an expected version), append_memory, search_memory,
grant_context_access, revoke_context_access.

Every call reads the stored document afresh, and every write carries the stored ETag, so a write through MCP
and a live agent's commit never overwrite each other: the loser gets a conflict (the agent reloads and
retries; an MCP caller gets a "stale version" tool error). Who may do what is in `services.mcp.principal`;
grants live next to the context (`context/<owner>/grants`) and go when the context is deleted.
Importing this module imports `mcp`: only code that serves MCP imports it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from aos_core.ascii_numbers import whole_number
from aos_core.errors import AOSError, ConflictError, NotFoundError
from aos_core.etag import retry_on_conflict, update_document
from aos_core.events import ID_PATTERN, validate_id
from aos_core.ports import JSON, Clock, StateStore
from services.context.server import ContextMCPServer
from services.mcp.principal import AccessDeniedError, McpPrincipal, principal_of

FORBIDDEN = -32003  # JSON-RPC server-defined error: the caller may not read this resource
_ID = ID_PATTERN
AgentIdArg = Annotated[str, Field(pattern=_ID, description="id of the agent whose context this is")]
Mode = Literal["read", "write"]
Exists = Callable[[str], Awaitable[bool]]


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn typed AOS errors into MCP tool errors (`isError` results with the message), never a crash."""
    try:
        yield
    except ToolError:
        raise
    except AccessDeniedError as exc:
        raise ToolError(f"forbidden: {exc}") from None
    except NotFoundError as exc:
        raise ToolError(f"not found: {exc}") from None
    except (AOSError, ValueError) as exc:
        raise ToolError(str(exc)) from None


@contextmanager
def resource_errors() -> Iterator[None]:
    """The same for resource reads, which fail as JSON-RPC errors."""
    try:
        yield
    except AccessDeniedError as exc:
        raise MCPError(code=FORBIDDEN, message=f"forbidden: {exc}") from None
    except (NotFoundError, ValueError) as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None


class ContextAccess:
    """Grants on agents' contexts, and the checks every tool and resource makes before touching one."""

    def __init__(self, store: StateStore, exists: Exists | None = None) -> None:
        self._store = store
        self._exists = exists

    @staticmethod
    def _key(owner: str) -> str:
        return f"context/{owner}/grants"

    async def grants(self, owner: str) -> dict[str, Mode]:
        """`{grantee agent id: "read" | "write"}` for `owner`'s context."""
        doc = await self._store.get(self._key(owner))
        return dict(doc.value.get("grants", {})) if doc else {}

    async def _allowed(self, principal: McpPrincipal, owner: str, write: bool) -> bool:
        if principal.agent_id is None:
            return principal.can("admin" if write else "operator")
        if principal.agent_id == owner:
            return True
        mode = (await self.grants(owner)).get(principal.agent_id)
        return mode == "write" or (mode == "read" and not write)

    async def can_read(self, principal: McpPrincipal, owner: str) -> bool:
        """Whether `principal` may read `owner`'s context (by role, as the owner, or by grant)."""
        return await self._allowed(principal, owner, False)

    async def check(self, principal: McpPrincipal, owner: str, *, write: bool = False) -> None:
        """AccessDeniedError unless `principal` may read (or write) `owner`'s context; NotFoundError if unknown."""
        validate_id(owner, "agent id")
        if not await self._allowed(principal, owner, write):
            what = "write" if write else "read"
            raise AccessDeniedError(f"{principal.name} may not {what} the context of {owner!r}")
        if self._exists is not None and principal.agent_id != owner and not await self._exists(owner):
            raise NotFoundError(f"agent {owner!r} is not registered")

    async def set_grant(self, principal: McpPrincipal, owner: str, grantee: str, mode: Mode | None) -> dict[str, Mode]:
        """Grant `grantee` read or write access to `owner`'s context (None revokes). Owner or admin only."""
        validate_id(grantee, "grantee")
        if principal.agent_id != owner and not principal.can("admin"):
            raise AccessDeniedError(f"only {owner!r} itself or an admin may change who reads its context")
        if grantee == owner:
            raise ValueError("an agent always has access to its own context")
        def regrant(value: Any) -> tuple[dict[str, Any], dict[str, Mode]]:
            grants: dict[str, Mode] = dict(value.get("grants", {})) if value else {}
            if mode is None:
                grants.pop(grantee, None)
            else:
                grants[grantee] = mode
            return {"grants": grants}, grants

        return await update_document(self._store, self._key(owner), regrant, what="grant update")


def _view(context: ContextMCPServer) -> dict[str, Any]:
    snap = context.snapshot()
    return {"agent_id": snap["agent_id"], "version": snap["version"], "state": snap["state"],
            "memory_count": snap["memory_count"]}


def register_context_mcp(server: MCPServer, store: StateStore, *, clock: Clock | None = None,
                         history_limit: int = 10, exists: Exists | None = None) -> ContextAccess:
    """Add the context resources and tools to `server`, over contexts kept in `store`.

    `history_limit` must match the agents' own ContextMCPServer (10 by default). `exists` says whether an
    agent id is known (the OS server passes its registry), so a typo is "not found", not an empty context.
    """
    access = ContextAccess(store, exists)

    async def open_context(agent_id: str) -> ContextMCPServer:
        context = ContextMCPServer(agent_id, store, clock=clock, history_limit=history_limit)
        await context.initialize()
        return context

    @server.tool(description="Read an agent's context: its version, state and memory count.")
    async def get_context(agent_id: AgentIdArg, ctx: Context) -> dict[str, Any]:
        with tool_errors():
            await access.check(principal_of(ctx), agent_id)
            return _view(await open_context(agent_id))

    @server.tool(description="Change an agent's state with an RFC 7386 JSON merge patch (null deletes a key). "
                             "expected_version must be the version you read; if the context moved on, the call "
                             "fails with a 'stale version' error and changes nothing.")
    async def update_context(
        agent_id: AgentIdArg,
        patch: Annotated[dict[str, Any], Field(description="JSON merge patch applied to the state")],
        expected_version: Annotated[int, Field(ge=0, description="the version the patch was made against")],
        ctx: Context,
    ) -> dict[str, Any]:
        with tool_errors():
            await access.check(principal_of(ctx), agent_id, write=True)
            context = await open_context(agent_id)
            try:
                await context.patch(patch, expected_version=expected_version)
            except ConflictError:
                stored = (await open_context(agent_id)).version
                raise ToolError(f"stale version: the patch was made against version {expected_version} of "
                                f"{agent_id!r}, but the stored version is {stored}; read the context again and "
                                f"reapply the change") from None
            return _view(context)

    @server.tool(description="Append an entry (text or a JSON object) to an agent's long-term memory.")
    async def append_memory(
        agent_id: AgentIdArg,
        entry: Annotated[dict[str, Any] | str, Field(description="the memory entry")],
        ctx: Context,
    ) -> dict[str, Any]:
        with tool_errors():
            await access.check(principal_of(ctx), agent_id, write=True)
            async def append() -> dict[str, Any]:  # no expected version here: a lost race reloads, appends again
                context = await open_context(agent_id)
                seq = await context.append_memory(entry)
                return {"agent_id": agent_id, "seq": seq, "version": context.version}

            return await retry_on_conflict(append, key=f"context/{agent_id}", what="memory append")

    @server.tool(description="Search an agent's memory for entries containing a text (case-insensitive), "
                             "newest first.")
    async def search_memory(
        agent_id: AgentIdArg,
        query: Annotated[str, Field(min_length=1, max_length=500)],
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        with tool_errors():
            await access.check(principal_of(ctx), agent_id)
            context = await open_context(agent_id)
            return {"agent_id": agent_id, "matches": await context.search_memory(query, limit=limit)}

    @server.tool(description="Let another agent read (or read and write) this agent's context. "
                             "Only the agent itself or an admin may grant.")
    async def grant_context_access(agent_id: AgentIdArg, grantee: AgentIdArg, ctx: Context,
                                   mode: Mode = "read") -> dict[str, Any]:
        with tool_errors():
            grants = await access.set_grant(principal_of(ctx), agent_id, grantee, mode)
            return {"agent_id": agent_id, "grants": grants}

    @server.tool(description="Take back another agent's access to this agent's context.")
    async def revoke_context_access(agent_id: AgentIdArg, grantee: AgentIdArg, ctx: Context) -> dict[str, Any]:
        with tool_errors():
            grants = await access.set_grant(principal_of(ctx), agent_id, grantee, None)
            return {"agent_id": agent_id, "grants": grants}

    @server.resource("context://agents/{agent_id}", name="agent_context", mime_type="application/json",
                     description="An agent's context: version, state and memory count.")
    async def context_resource(agent_id: str, ctx: Context) -> str:
        with resource_errors():
            await access.check(principal_of(ctx), agent_id)
            return _json(_view(await open_context(agent_id)))

    @server.resource("context://agents/{agent_id}/memory", name="agent_memory", mime_type="application/json",
                     description="An agent's latest memory entries (up to 100), oldest first.")
    async def memory_resource(agent_id: str, ctx: Context) -> str:
        with resource_errors():
            await access.check(principal_of(ctx), agent_id)
            context = await open_context(agent_id)
            count = context.snapshot()["memory_count"]
            return _json(await context.memory(after=max(0, count - 100), limit=100))

    @server.resource("context://agents/{agent_id}/history/{version}", name="agent_context_version",
                     mime_type="application/json", description="An agent's state as of a past version.")
    async def history_resource(agent_id: str, version: str, ctx: Context) -> str:
        with resource_errors():
            await access.check(principal_of(ctx), agent_id)
            try:
                number = whole_number(version)
            except ValueError:
                raise ValueError(f"version must be a whole number, not {version!r}") from None
            return _json(await (await open_context(agent_id)).get_version(number))

    return access


def create_context_mcp_server(store: StateStore, *, clock: Clock | None = None, history_limit: int = 10,
                              name: str = "aos-context") -> MCPServer:
    """A standalone MCP server over the contexts in `store` (the OS server at /api/mcp includes the same)."""
    server: MCPServer = MCPServer(name, instructions="Agent contexts of the Agent Operating System.",
                                  log_level="WARNING")
    register_context_mcp(server, store, clock=clock, history_limit=history_limit)
    return server


def _json(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

"""Where the OS MCP server answers differently from `MCPServer`'s defaults, as one server middleware.

- An unknown tool or prompt is the protocol error `-32602 Invalid params` the specs (2025-06-18, 2025-11-25,
  2026-07-28) name, not a tool result (tools) or an error with code 0 / -32603 (prompts).
- `resources/list` lists the agent contexts the caller may read (`context://agents/{id}`), `PAGE_SIZE` per
  page in agent id order; `nextCursor` is the last id of the page. The context templates stay in
  `resources/templates/list`.

The handler's own answer passes through the middleware, so the envelope (`resultType`, the `serverInfo` stamp
of 2026-07-28) stays the SDK's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from services.mcp.principal import principal_of

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from aos_core.kernel import AgentOperatingSystem
    from services.context.mcp_server import ContextAccess

PAGE_SIZE = 50
CONTEXT_URI = "context://agents/{}"


class OsProtocol:
    """The middleware (`MCPServer(middleware=[...])`); `bind` it to the server once its tools exist."""

    def __init__(self, aos: AgentOperatingSystem) -> None:
        self.aos = aos
        self._server: MCPServer | None = None
        self._access: ContextAccess | None = None

    def bind(self, server: MCPServer, access: ContextAccess) -> None:
        self._server, self._access = server, access

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        if ctx.method == "tools/call":
            await self._known("tool", params.get("name"), self._tool_names)
        elif ctx.method == "prompts/get":
            await self._known("prompt", params.get("name"), self._prompt_names)
            try:
                return await call_next(ctx)
            except ValueError as exc:  # MCPServer turns a bad or missing argument into a bare ValueError
                raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        elif ctx.method == "resources/list":
            cursor = params.get("cursor")
            if cursor is not None and not isinstance(cursor, str):
                raise MCPError(code=INVALID_PARAMS, message="Invalid cursor: it must be a string from nextCursor")
            result = await call_next(ctx)
            if isinstance(result, dict):
                return {**result, **await self._contexts(ctx, cursor)}
            return result
        return await call_next(ctx)

    async def _known(self, what: str, name: Any, names: Callable[[], Awaitable[set[str]]]) -> None:
        if isinstance(name, str) and name not in await names():
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown {what}: {name}", data={"name": name})

    async def _tool_names(self) -> set[str]:
        assert self._server is not None, "OsProtocol.bind was not called"
        return {tool.name for tool in await self._server.list_tools()}

    async def _prompt_names(self) -> set[str]:
        assert self._server is not None, "OsProtocol.bind was not called"
        return {prompt.name for prompt in await self._server.list_prompts()}

    async def _contexts(self, ctx: ServerRequestContext[Any, Any], cursor: str | None) -> dict[str, Any]:
        """One page of the contexts the caller may read: `{"resources": [...], "nextCursor"?: ...}`."""
        assert self._access is not None, "OsProtocol.bind was not called"
        principal = principal_of(ctx)
        registry = self.aos.registry
        page: list[dict[str, Any]] = []
        more = False
        for agent in sorted(await self.aos.list_agents(limit=10_000), key=lambda a: a["id"]):
            agent_id = agent["id"]
            if cursor is not None and agent_id <= cursor:
                continue
            agent_class = registry.agent_class(agent["type"]) if registry.has_type(agent["type"]) else None
            if getattr(agent_class, "read_context", None) is None:
                continue  # a stateless agent keeps no context
            if not await self._access.can_read(principal, agent_id):
                continue
            if len(page) == PAGE_SIZE:
                more = True
                break
            page.append({"uri": CONTEXT_URI.format(agent_id), "name": f"{agent_id} context",
                         "title": f"Context of {agent_id} ({agent['type']})", "mimeType": "application/json",
                         "description": f"The context of the {agent['type']} agent {agent_id!r}: version, state "
                                        "and memory count."})
        body: dict[str, Any] = {"resources": page}
        if more:
            body["nextCursor"] = page[-1]["uri"].removeprefix(CONTEXT_URI.format(""))
        return body

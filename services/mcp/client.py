"""Agents as MCP clients: the MCP servers an agent's config names, behind one `call_tool` API.

    clients = McpClients.for_agent(agent.config, aos.config, secrets=build_secret_store(...))
    result = await clients.call_tool("github/create_issue", {"title": "..."})   # or just "create_issue"
    await clients.close()

A server is a stdio command (started once, kept running) or a streamable HTTP URL whose headers may come from
the SecretStore (`secret_headers: {"Authorization": "github-token"}`: the secret's value, never logged). Every
call has a deadline (`timeout`), transient failures (the connection broke, the deadline passed) are retried
with backoff (`attempts`), and a circuit breaker per server (`mcp:<name>`) fails fast while it is down.
What comes back is typed: McpToolError when the server answered with an error (not retried: it would answer
the same), McpConnectionError when it could not be reached, OperationTimeoutError, CircuitOpenError.
Retries can run a tool twice when a reply is lost; set `attempts: 1` for tools that must not repeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aos_core.errors import AOSError, ConfigError, NotFoundError
from aos_core.ports import Clock, SecretStore
from services.reliability import (
    BreakerRegistry,
    CircuitBreaker,
    OperationTimeoutError,
    retry_async,
    with_timeout,
)

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult, Tool

    from aos_core.config import AOSConfig

log = logging.getLogger("aos.mcp.client")
IDEMPOTENCY_META_KEY = "aos/idempotency-key"  # in a tools/call request's `_meta`: the caller's key for this call


class McpToolError(AOSError):
    """The server answered the call with an error: the tool failed, it is unknown, or the arguments are invalid."""

    def __init__(self, server: str, tool: str, message: str) -> None:
        super().__init__(f"MCP tool {server}/{tool} failed: {message}")
        self.server, self.tool, self.message = server, tool, message


class McpConnectionError(AOSError, ConnectionError):
    """The server could not be reached or the connection broke (a ConnectionError, so it is retried)."""


class McpServerSpec(BaseModel):
    """One MCP server: `command` (stdio) or `url` (streamable HTTP), and how hard to try."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    secret_env: dict[str, str] = Field(default_factory=dict)  # variable -> secret name
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, str] = Field(default_factory=dict)  # header -> secret name
    timeout: float = Field(default=30.0, gt=0)  # per call attempt
    connect_timeout: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=3, ge=1)
    backoff_initial: float = Field(default=0.2, ge=0)
    backoff_max: float = Field(default=5.0, ge=0)
    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        return self


@dataclass(frozen=True, slots=True)
class McpToolResult:
    """A successful tool call: `data` is the structured result, else the text parsed as JSON, else the text."""

    server: str
    tool: str
    data: Any
    text: str
    raw: CallToolResult


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content if getattr(block, "text", None))


class _Connection:
    """One open session, owned by a task: the mcp transports must be entered and left in the same task."""

    def __init__(self, spec: McpServerSpec, secrets: SecretStore | None) -> None:
        self.spec, self._secrets = spec, secrets
        self.client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _resolve(self, plain: Mapping[str, str], secret: Mapping[str, str], what: str) -> dict[str, str]:
        values = dict(plain)
        for key, secret_name in secret.items():
            value = await self._secrets.get_secret(secret_name) if self._secrets is not None else None
            if value is None:
                raise ConfigError(f"mcp server {self.spec.name}: {what} {key!r} needs secret {secret_name!r}, "
                                  "which is not set")
            values[key] = value
        return values

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Client]:
        from mcp import Client, StdioServerParameters

        spec = self.spec
        if spec.command is not None:
            env = await self._resolve(spec.env or {}, spec.secret_env, "variable") if (
                spec.env is not None or spec.secret_env) else None
            params = StdioServerParameters(command=spec.command, args=spec.args, env=env, cwd=spec.cwd)
            async with Client(params, mode="legacy") as client:
                yield client
            return
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = await self._resolve(spec.headers, spec.secret_headers, "header")
        assert spec.url is not None
        async with create_mcp_http_client(headers=headers) as http, \
                Client(streamable_http_client(spec.url, http_client=http)) as client:
            yield client

    async def _run(self) -> None:
        try:
            async with self._session() as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        finally:
            self.client = None
            self._ready.set()

    async def open(self, clock: Clock | None) -> Client:
        self._task = asyncio.ensure_future(self._run())
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await with_timeout(asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED),
                               self.spec.connect_timeout, f"connecting to MCP server {self.spec.name}", clock=clock)
        except BaseException:
            ready.cancel()
            await self.close()
            raise
        if self.client is None:
            error = self._task.exception() if self._task.done() and not self._task.cancelled() else None
            if isinstance(error, ConfigError):
                raise error
            raise McpConnectionError(f"cannot connect to MCP server {self.spec.name}: "
                                     f"{type(error).__name__ if error else 'closed'}: {error}") from error
        return self.client

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            if not self._ready.is_set():
                self._task.cancel()  # still connecting
            await asyncio.gather(self._task, return_exceptions=True)


class McpClients:
    """The MCP servers one agent may call, and `call_tool` across them."""

    def __init__(self, specs: Iterable[McpServerSpec], *, secrets: SecretStore | None = None,
                 clock: Clock | None = None, breakers: BreakerRegistry | None = None) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._breakers = breakers or BreakerRegistry()  # the kernel's, so health shows them
        self._secrets, self._clock = secrets, clock
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tools: dict[str, list[Tool]] = {}

    @classmethod
    def for_agent(cls, agent_config: Mapping[str, Any], config: AOSConfig, *, secrets: SecretStore | None = None,
                  clock: Clock | None = None, breakers: BreakerRegistry | None = None) -> McpClients:
        """The servers in the agent config's `mcp_servers`: names from `config.mcp.servers`, or inline specs."""
        specs = []
        for entry in agent_config.get("mcp_servers", []):
            if isinstance(entry, str):
                if entry not in config.mcp.servers:
                    raise ConfigError(f"mcp_servers: {entry!r} is not in mcp.servers "
                                      f"({', '.join(sorted(config.mcp.servers)) or 'none configured'})")
                specs.append(parse_spec({"name": entry, **config.mcp.servers[entry]}, f"mcp.servers.{entry}"))
            else:
                specs.append(parse_spec(entry, "mcp_servers"))
        return cls(specs, secrets=secrets, clock=clock, breakers=breakers)

    def breaker(self, server: str) -> CircuitBreaker:
        spec = self.specs[server]
        return self._breakers.get(f"mcp:{server}", failure_threshold=spec.failure_threshold, timeout=spec.reset_timeout,
                           expected_exception=(ConnectionError, TimeoutError), clock=self._clock)

    async def _client(self, server: str) -> Client:
        lock = self._locks.setdefault(server, asyncio.Lock())
        async with lock:
            connection = self._connections.get(server)
            if connection is not None and connection.alive and connection.client is not None:
                return connection.client
            if connection is not None:
                await connection.close()
            connection = self._connections[server] = _Connection(self.specs[server], self._secrets)
            return await connection.open(self._clock)

    async def _drop(self, server: str) -> None:
        connection = self._connections.pop(server, None)
        if connection is not None:
            await connection.close()

    async def _attempt(self, server: str, what: str, call: Any) -> Any:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        spec = self.specs[server]
        async with self.breaker(server):
            try:
                client = await self._client(server)
                return await with_timeout(call(client), spec.timeout, f"MCP {server}/{what}", clock=self._clock)
            except MCPError as exc:
                if exc.error.code == CONNECTION_CLOSED:
                    await self._drop(server)
                    raise McpConnectionError(f"MCP server {server} closed the connection") from None
                raise McpToolError(server, what, exc.error.message) from None
            except OperationTimeoutError:
                await self._drop(server)  # a late answer must not be read as the reply to the next call
                raise
            except (AOSError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the transport broke (process died, socket reset, bad HTTP status)
                await self._drop(server)
                raise McpConnectionError(f"MCP server {server}: {type(exc).__name__}: {exc}") from exc

    async def _with_retries(self, server: str, what: str, call: Any) -> Any:
        if server not in self.specs:
            raise NotFoundError(f"no MCP server {server!r} for this agent (has: {', '.join(sorted(self.specs))})")
        spec = self.specs[server]
        return await retry_async(self._attempt, server, what, call, attempts=spec.attempts,
                                 initial=spec.backoff_initial, maximum=spec.backoff_max, clock=self._clock)

    async def list_tools(self, server: str | None = None) -> dict[str, list[Tool]]:
        """`{server: [Tool, ...]}` for one server or all of them (cached after the first listing)."""
        names = [server] if server is not None else list(self.specs)
        for name in names:
            if name not in self._tools:
                result = await self._with_retries(name, "tools/list", lambda c: c.list_tools())
                self._tools[name] = list(result.tools)
        return {name: self._tools[name] for name in names}

    async def _locate(self, name: str) -> tuple[str, str]:
        server, sep, tool = name.partition("/")
        if sep:
            return server, tool
        owners = [s for s, tools in (await self.list_tools()).items() if any(t.name == name for t in tools)]
        if len(owners) != 1:
            where = "no server" if not owners else f"several servers ({', '.join(owners)}); say which"
            raise NotFoundError(f"MCP tool {name!r}: {where} offers it")
        return owners[0], name

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                        idempotency_key: str | None = None) -> McpToolResult:
        """Call `server/tool` (or a tool name only one server offers) and return its result.

        `idempotency_key` goes in the request's `_meta` (IDEMPOTENCY_META_KEY), the same on every retry, so a
        server that honours it runs the call once however often it arrives.
        McpToolError if the tool reports an error; McpConnectionError, OperationTimeoutError or
        CircuitOpenError when the server cannot answer in time (after the spec's attempts).
        """
        server, tool = await self._locate(name)
        args = dict(arguments or {})
        meta: Any = {IDEMPOTENCY_META_KEY: idempotency_key} if idempotency_key else None
        result: CallToolResult = await self._with_retries(server, tool,
                                                          lambda c: c.call_tool(tool, args, meta=meta))
        text = _text(result)
        if result.is_error:
            raise McpToolError(server, tool, text or "the tool reported an error")
        data: Any = result.structured_content
        if data is None:
            try:
                data = json.loads(text)
            except ValueError:
                data = text
        return McpToolResult(server, tool, data, text, result)

    async def close(self) -> None:
        """Stop stdio servers and close HTTP sessions."""
        for server in list(self._connections):
            await self._drop(server)

    async def __aenter__(self) -> McpClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def parse_spec(raw: Any, where: str) -> McpServerSpec:
    """An McpServerSpec, or ConfigError naming `where` and each bad field."""
    try:
        return McpServerSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None

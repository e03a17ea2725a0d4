"""`aos serve`: the local Functions host. Loads the app, indexes it once, serves it on uvicorn.

Routes: `/{routePrefix}/...` the app's HTTP functions, `/runtime/webhooks/durabletask/...` the Durable
webhooks, `/admin` the host page, `POST /admin/servicebus/topics/{topic}/messages` to post to a local topic,
`/` a redirect to the app's dashboard (an HTTP function routed `dashboard`) or to `/admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aos_core import strict_json
from aos_core.clock import SystemClock
from aos_core.errors import NotFoundError
from aos_core.ports import Clock
from services.devhost import admin, host_db, leases, orchestration_db
from services.devhost.durable_webhooks import WEBHOOK_PATH, DurableWebhooks, client_binding, management_urls
from services.devhost.entities import EntityHost
from services.devhost.http_trigger import HttpTriggers, key_matches, presented_key
from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.leases import Leases
from services.devhost.limits import BodyRejected, read_body
from services.devhost.orchestration_webhooks import OrchestrationWebhooks
from services.devhost.orchestrations import OrchestrationHost
from services.devhost.problem import problem
from services.devhost.servicebus import ServiceBusTriggers, publish
from services.devhost.settings import HostSettings
from services.devhost.timers import Timers, timer_triggers
from services.dispatch.durable import close_durable_http_session, fresh_durable_http_session
from services.messaging.sqlite_bus import SqliteEventBus
from services.sqlite import SqliteDatabase

log = logging.getLogger("aos.devhost")


class DevHost:
    """Everything one running host owns: the index, the trigger runners, the host database and the bus."""

    def __init__(self, functions: list[FunctionSpec], settings: HostSettings, *, clock: Clock | None = None) -> None:
        self.functions = functions
        self.settings = settings
        self.clock = clock or SystemClock()
        self.executor = ThreadPoolExecutor(max_workers=settings.thread_pool_size, thread_name_prefix="aos-fn")
        self.invoker = Invoker(self.executor, function_directory=str(settings.app_dir))
        self.db = SqliteDatabase(settings.data_dir / "host.db",
                                 schema=host_db.SCHEMA + leases.SCHEMA + orchestration_db.SCHEMA)
        self.bus = SqliteEventBus(settings.data_dir / "bus.db", clock=self.clock)
        self.http = HttpTriggers(functions, settings, self.invoker, self.extra_inputs)
        # Partitions and timers by lease, so instances over one data folder share them as on Azure.
        self.leases = Leases(self.db, instance_id=settings.instance_id or f"host-{os.getpid()}",
                             url=settings.base_url, partitions=settings.partitions, ttl=settings.lease_ttl,
                             busy=lambda partition: self.entities.busy(partition),
                             on_gain=lambda partitions: self._spawn_resume())
        self.entities = EntityHost(functions, self.db, self.invoker, batch_size=settings.entity_batch_size,
                                   max_parallel=settings.thread_pool_size, leases=self.leases,
                                   poll_interval=settings.entity_poll)
        self.orchestrations = OrchestrationHost(functions, self.db, self.invoker, self.clock,
                                                max_parallel=settings.thread_pool_size,
                                                on_entity_work=self.entities.wake, extra_inputs=self.extra_inputs,
                                                leases=self.leases)
        self.entities.replies = self.orchestrations.entity_replies
        self.entities.on_replied = self.orchestrations.wake
        self.webhooks = DurableWebhooks(self.entities, settings, OrchestrationWebhooks(
            self.orchestrations, settings, lambda instance_id: management_urls(settings, instance_id)))
        self.servicebus = ServiceBusTriggers(functions, settings, self.bus, self.invoker, self.extra_inputs)
        self.timers = Timers(timer_triggers(functions), self.db, self.invoker, self.clock, self.extra_inputs,
                             leases=self.leases)
        self._resumes: set[asyncio.Task[None]] = set()
        self._binding: str | None = None
        prefix = f"/{settings.route_prefix}".lower() if settings.route_prefix else None
        self._function_prefix = prefix + "/" if prefix else None
        self.host_app = Starlette(routes=[
            Route("/", self._root),
            Route("/admin", self._admin_page),
            Route("/admin/status", self._admin_status),
            Route("/admin/servicebus/topics/{topic}/messages", self._post_topic, methods=["POST"]),
            Route(WEBHOOK_PATH + "{path:path}", self._webhook, methods=["GET", "POST", "DELETE", "PUT"]),
            Route("/{path:path}", self.http, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        ], lifespan=self._lifespan, exception_handlers={404: _not_found, 405: _not_allowed})

        async def app(scope: Scope, receive: Receive, send: Send) -> None:  # a plain function: ASGI 3 to uvicorn
            await self._dispatch(scope, receive, send)

        self.app = app

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app uvicorn serves. A request for an HTTP function (under the route prefix) goes straight to the
        triggers: it is the hot path, and the host's own routes and middleware have nothing to add to it."""
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            if self._function_prefix is not None and \
                    raw[:len(self._function_prefix)].decode("latin-1").lower() == self._function_prefix:
                await self.http(scope, receive, send)
                return
        await self.host_app(scope, receive, send)

    def extra_inputs(self, spec: FunctionSpec) -> dict[str, Any]:
        """Inputs besides the trigger: a binding JSON string per durableClient binding (the same for every call:
        it names only this host's endpoints and keys, so it is written once)."""
        if self._binding is None:
            self._binding = client_binding(self.settings)
        return {name: self._binding for name in spec.durable_clients}

    # --- lifecycle ------------------------------------------------------------------------------------

    def _spawn_resume(self) -> None:
        # Partitions just taken over may hold signals queued before: start their entities now.
        task = asyncio.create_task(self.entities.resume())
        self._resumes.add(task)
        task.add_done_callback(self._resumes.discard)

    async def start(self) -> None:
        fresh_durable_http_session()
        await self.leases.start()
        await self.entities.start()
        await self.orchestrations.start()
        await self.servicebus.start()
        await self.timers.start()

    async def stop(self) -> None:
        await self.timers.stop()
        await self.servicebus.stop()
        await self.orchestrations.stop()
        await self.entities.stop()
        await self.leases.stop()
        await close_durable_http_session()
        await self.bus.close()
        await self.db.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # --- endpoints --------------------------------------------------------------------------------------

    async def _webhook(self, request: Request) -> Response:
        # The path as sent (percent-encoded): an entity key may hold an encoded "/".
        raw = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
        return await self.webhooks.handle(request, raw[len(WEBHOOK_PATH):] if raw else request.path_params["path"])

    def _admin_allowed(self, request: Request) -> bool:
        # From any address, loopback too: a local process is not necessarily the developer.
        return self.settings.open_webhooks or key_matches(presented_key(request), self.settings.master_key)

    def dashboard_path(self) -> str | None:
        """The path of the app's dashboard (an HTTP function routed `dashboard`), if it has one."""
        for spec in self.http.functions:
            if str(spec.trigger.get("route", "")).strip("/").lower() == "dashboard":
                prefix = f"/{self.settings.route_prefix}" if self.settings.route_prefix else ""
                return f"{prefix}/dashboard"
        return None

    async def _root(self, request: Request) -> Response:
        return RedirectResponse(self.dashboard_path() or "/admin", status_code=307)

    async def status(self) -> dict[str, Any]:
        return await admin.collect(self)

    async def _admin_status(self, request: Request) -> Response:
        if not self._admin_allowed(request):
            return problem(401, "Unauthorized", "the admin pages need the master key (x-functions-key or ?code=)")
        return JSONResponse(await self.status())

    async def _admin_page(self, request: Request) -> Response:
        if not self._admin_allowed(request):
            return problem(401, "Unauthorized", "the admin pages need the master key (x-functions-key or ?code=)")
        return Response(admin.render(await self.status()), media_type="text/html; charset=utf-8")

    async def _post_topic(self, request: Request) -> Response:
        if not self._admin_allowed(request):
            return problem(401, "Unauthorized", "the admin API needs the master key (x-functions-key header)")
        topic = request.path_params["topic"]
        try:
            body = await read_body(request, self.settings.max_message_bytes, self.settings.body_timeout)
        except BodyRejected as exc:
            return exc.response()
        try:
            ids = await publish(self.bus, topic, strict_json.loads(body))
        except NotFoundError as exc:
            return problem(404, "Not Found", str(exc))
        except strict_json.JsonRejected as exc:
            return problem(400, "Bad Request", f"the body is not acceptable JSON: {exc}")
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
            return problem(400, "Bad Request", "the body must be a CloudEvent or an array of them", errors=errors)
        except ValueError as exc:
            return problem(400, "Bad Request", str(exc))
        return JSONResponse({"topic": topic, "ids": ids}, status_code=201)


async def _not_found(request: Request, exc: Exception) -> Response:
    # Paths no route pattern can match (a control character, say) still get a problem body, like every 404.
    return problem(404, "Not Found", f"no function serves {request.url.path!r}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return problem(405, "Method Not Allowed", f"{request.method} is not allowed on {request.url.path!r}")


def banner(host: DevHost, sources: list[str]) -> str:
    """What `func start` prints: the functions, HTTP URLs first, and the key to call them with."""
    lines = [f"AOS local Functions host on {host.settings.base_url}  (settings: {', '.join(sources) or 'none'};"
             f" data in {host.settings.data_dir})", "", "Functions:", ""]
    for spec in host.functions:
        if spec.trigger_type == "httpTrigger":
            methods = ",".join(spec.trigger.get("methods") or ["GET", "POST"])
            lines.append(f"        {spec.name}: [{methods}] {host.http.url(spec)}")
    for spec in host.functions:
        if spec.trigger_type != "httpTrigger":
            lines.append(f"        {spec.name}: {spec.describe()}")
    # The key is printed only when the host generated it; a key from settings stays out of the log.
    printable = not os.environ.get("AOS_DEVHOST__FUNCTION_KEY")
    key = f"{host.settings.function_key} (generated, kept in {host.settings.data_dir}/host_keys.json)" \
        if printable else "from AOS_DEVHOST__FUNCTION_KEY"
    admin = " (with the master key)" if os.environ.get("AOS_DEVHOST__MASTER_KEY") else \
        f"?code={host.settings.master_key}"
    lines += ["", f"Function key (x-functions-key header or ?code=): {key}",
              f"Host page: {host.settings.base_url}/admin{admin}"]
    dashboard = host.dashboard_path()
    if dashboard is not None:  # the key rides in the fragment, which the browser never sends to a server
        fragment = host.settings.function_key if printable else "<your function key>"
        lines.append(f"Dashboard: {host.settings.base_url}{dashboard}#key={fragment}")
    lines.append("")
    return "\n".join(lines)

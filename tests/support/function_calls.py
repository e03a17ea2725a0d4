"""Calling function_app's indexed functions the way the Functions host does (shared by the function tests)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import azure.functions as func
import pytest

from aos_core import runtime
from services.devhost.index import FunctionSpec, app_functions, index_functions
from services.dispatch.durable import close_durable_http_session
from tests.support.durable_webhook import SignalRecorder, entity_batch

_FUNCTIONS: dict[str, Any] = {}


def functions() -> dict[str, Any]:
    """function_app's indexed functions by name (the app is indexed once per process, shared with the host)."""
    if not _FUNCTIONS:
        import function_app

        _FUNCTIONS.update({f.get_function_name(): f for f in app_functions(function_app.app)})
    return _FUNCTIONS


def indexed_function_app() -> list[FunctionSpec]:
    """function_app as the local host indexes it."""
    import function_app

    return index_functions(function_app.app)


@pytest.fixture
def durable() -> Iterator[SignalRecorder]:
    """A stand-in Durable webhook that records the entity signals functions send."""
    recorder = SignalRecorder()
    yield recorder
    recorder.close()


@pytest.fixture
async def warm_kernel(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The settings function_app reads, and a fresh warm kernel after each test.

    Entity signals go out on the loop the function runs on (here the test's), where the Durable SDK keeps
    its HTTP session: it is closed with the test's loop, as a worker's lives as long as its loop.
    """
    monkeypatch.setenv("AOS_EVENTS_TOPIC", "agent.events")
    monkeypatch.setenv("AOS_MESSAGES_TOPIC", "agent.messages")
    yield
    runtime.reset_aos()
    await close_durable_http_session()


async def call(name: str, method: str = "GET", *, body: Any = None, raw: bytes | None = None,
               route: dict[str, str] | None = None, params: dict[str, str] | None = None,
               headers: dict[str, str] | None = None, durable: SignalRecorder | None = None) -> func.HttpResponse:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request = func.HttpRequest(method=method, url=f"http://localhost/api/{name}", headers=headers or {},
                               params=params or {}, route_params=route or {}, body=data)
    kwargs: dict[str, Any] = {"req": request}
    if any(b.type == "durableClient" for b in functions()[name].get_bindings()):
        kwargs["client"] = (durable or SignalRecorder()).client_binding()
    return await functions()[name].get_user_function()(**kwargs)


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def run_entity(key: str, state: Any, operations: list[tuple[str, Any]]) -> dict[str, Any]:
    out = json.loads(functions()["agent"].get_user_function()(entity_batch(key, state, operations)))
    out["state"] = json.loads(out["entityState"]) if out["entityState"] else None
    return out


async def deliver_signals(durable: SignalRecorder, states: dict[str, Any]) -> list[dict[str, Any]]:
    """Play the Durable extension: run each recorded signal through the entity function, keeping state."""
    results = []
    for signal in durable.take():
        assert (signal.entity, signal.operation) == ("agent", "deliver")
        out = run_entity(signal.key, states.get(signal.key), [("deliver", signal.input)])
        states[signal.key] = out["state"]
        results.extend(out["results"])
    return results


async def register(agent_id: str, agent_type: str = "tally", **extra: Any) -> func.HttpResponse:
    response = await call("create_agent", "POST", body={"type": agent_type, "id": agent_id, **extra})
    assert response.status_code in (200, 201), response.get_body()
    return response


def principal(*roles: str, name: str = "ada@example.com") -> str:
    claims = [{"typ": "roles", "val": r} for r in roles] + [{"typ": "name", "val": name}]
    data = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(data).encode()).decode()

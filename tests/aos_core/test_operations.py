"""The HTTP operation declarations: each names a real handler and real models, and an API holds each once."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from aos_core.openapi import openapi_document
from aos_core.operations import MODEL_REF, HttpApi, HttpOperation, Reply, resolve
from function_app import API

ROOT = Path(__file__).resolve().parents[2]


def _model_refs(schema: object) -> list[str]:
    if isinstance(schema, str):
        return [schema]
    if isinstance(schema, dict):
        if MODEL_REF in schema:
            return [schema[MODEL_REF]]
        return [ref for value in schema.values() for ref in _model_refs(value) if not isinstance(value, str)]
    if isinstance(schema, list | tuple):
        return [ref for value in schema for ref in _model_refs(value)]
    return []


@pytest.mark.parametrize("op", API.operations, ids=lambda op: op.name)
def test_every_declared_handler_and_model_exists(op: HttpOperation) -> None:
    assert inspect.iscoroutinefunction(resolve(op.handler)), op.handler
    assert list(inspect.signature(resolve(op.handler)).parameters) == ["aos", "request", "caller"]
    refs = _model_refs(op.body) + [ref for reply in op.replies.values() for ref in _model_refs(reply.body)]
    for ref in refs:
        assert issubclass(resolve(ref), BaseModel), ref


def test_the_document_describes_exactly_the_declared_operations() -> None:
    described = {(path, method.upper()) for path, item in openapi_document(API)["paths"].items() for method in item}
    declared = {(op.path, method) for op in API.operations for method in op.described_methods}
    assert described == declared
    assert ("/api/dashboard", "GET") not in described and ("/api/mcp", "GET") not in described


def _op(name: str, route: str, method: str = "GET") -> HttpOperation:
    return HttpOperation(name, route, (method,), "reader", "aos_core.api:health", "probe", replies={200: Reply("ok")})


def test_a_name_or_a_route_and_method_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' is declared twice"):
        HttpApi.compose([_op("a", "x")], [_op("a", "y")])
    with pytest.raises(ValueError, match=r"GET /api/X is declared twice \(again by 'b'\)"):
        HttpApi.compose([_op("a", "x")], [_op("b", "X")])
    assert len(HttpApi.compose([_op("a", "x")], [_op("b", "x", "POST")]).operations) == 2


@pytest.mark.parametrize("bad", [{"handler": "aos_core.api.health"}, {"name": "Get-It"}, {"methods": ("FETCH",)},
                                 {"replies": {404: Reply("nothing")}}, {"body": "NoModule"}])
def test_a_malformed_declaration_fails_when_it_is_made(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"name": "probe", "route": "probe", "methods": ("GET",), "role": None,
                                 "handler": "aos_core.api:health", "summary": "probe",
                                 "replies": {200: Reply("ok")}} | bad
    with pytest.raises(ValueError):
        HttpOperation(**fields)  # type: ignore[arg-type]


def test_the_entity_function_is_the_entity_the_dispatcher_signals() -> None:
    import function_app
    from services.dispatch import ENTITY_NAME

    assert function_app.ENTITY_NAME == ENTITY_NAME


def test_indexing_the_app_loads_no_handler_model_kernel_or_sdk() -> None:
    # What a new Functions worker pays before the first request: declarations only (bench/cold_start.py times it).
    probe = ("import sys, json, function_app; function_app.app.get_functions(); "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('aos_core', 'services', 'agents', "
             "'mcp', 'azure.storage', 'azure.data', 'azure.servicebus', 'azure.identity', 'azure.monitor')))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    declarations = {"operations", "api_operations", "names", "functions", "ids", "lazy"}
    packages = {"agents", "aos_core", "services", "services.context", "services.dashboard", "services.governance",
                "services.learning", "services.mcp", "services.messaging", "services.workflows"}
    heavy = {m for m in loaded - packages if m.rpartition(".")[2] not in declarations}
    assert not heavy, heavy

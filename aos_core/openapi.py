"""The OpenAPI 3.1 document of an `HttpApi`, generated from its operations' declarations and pydantic models.

Request models are described as pydantic validates them, responses as it serializes them, so every answer
matches the document that `GET /api/openapi.json` serves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from aos_core.operations import MODEL_REF, HttpApi, HttpOperation, Reply, resolve

_PROBLEM_MODEL = "aos_core.api_models:Problem"
_PROBLEM = "application/problem+json"
_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           406: "Not acceptable", 409: "Conflict", 413: "Body too large", 422: "Unprocessable", 503: "Unavailable"}
_KEYED = [{"functionKey": []}, {"functionKeyQuery": []}]


class _Models:
    """The models the document refers to, in first-seen order, each with the mode it is described in."""

    def __init__(self) -> None:
        self.modes: dict[type[BaseModel], str] = {}

    def ref(self, ref: str, *, request: bool) -> dict[str, str]:
        cls = resolve(ref)
        if request or cls not in self.modes:
            self.modes[cls] = "validation" if request else self.modes.get(cls, "serialization")
        return {"$ref": f"#/components/schemas/{cls.__name__}"}

    def schema(self, raw: Any, *, request: bool) -> Any:
        """A model's `$ref` for a model name, else `raw` with each model placeholder (`aos_core.operations.model`)
        replaced by its `$ref`."""
        return self.ref(raw, request=request) if isinstance(raw, str) else self._walk(raw, request=request)

    def _walk(self, raw: Any, *, request: bool) -> Any:
        if isinstance(raw, dict):
            if MODEL_REF in raw:
                return self.ref(raw[MODEL_REF], request=request)
            return {key: self._walk(value, request=request) for key, value in raw.items()}
        if isinstance(raw, list | tuple):
            return [self._walk(value, request=request) for value in raw]
        return raw


def _reply(reply: Reply, models: _Models) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.body is not None:
        out["content"] = {reply.media_type: {"schema": models.schema(reply.body, request=False)}}
    if reply.headers:
        out["headers"] = {name: {"schema": {"type": "string"}} for name in reply.headers}
    if reply.links:
        out["links"] = {name: {"operationId": op, "parameters": dict(params)}
                        for name, (op, params) in reply.links.items()}
    return out


def _operation(op: HttpOperation, models: _Models) -> dict[str, Any]:
    described = {p.name for p in op.params}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in op.path_params if name not in described]
    params += [{"name": p.name, "in": p.where, "required": p.where == "path", "schema": dict(p.schema),
                **({"description": p.description} if p.description else {})} for p in op.params]
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary}
    if op.role is None:
        out["security"] = []
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = {} if op.body == {} else models.schema(op.body, request=True)
        out["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": schema}}}
    responses = {str(code): _reply(reply, models) for code, reply in op.replies.items()}
    problem = {_PROBLEM: {"schema": models.ref(_PROBLEM_MODEL, request=False)}}
    responses |= {str(code): {"description": _TITLES[code], "content": problem} for code in op.problems}
    responses |= {code: models.schema(value, request=False) for code, value in op.extra_responses.items()}
    out["responses"] = responses
    return out


def openapi_document(api: HttpApi) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every operation of `api` that is included in the schema."""
    models = _Models()
    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        for method in op.described_methods:
            paths.setdefault(op.path, {})[method.lower()] = _operation(op, models)
    _, defs = models_json_schema(list(models.modes.items()), ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "AOS - Agent Operating System", "version": "1.0.0",
                 "description": "Events, agents and their context over HTTP (Azure Functions)."},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        "security": _KEYED,
    }

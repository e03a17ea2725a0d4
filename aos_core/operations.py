"""One declaration per HTTP operation: route, methods, role, models, handler, and how the document shows it.

`function_app.py` builds one Function per `HttpOperation` and `aos_core.openapi` the OpenAPI document from
the same list, so a route, its auth and its description cannot drift apart. An area (governance, learning,
...) exports its operations as a tuple in its `operations.py`; the app composes the tuples into an `HttpApi`.

Handlers and models are named by `"package.module:attribute"` and imported on first use, like an ASGI
server's app string: indexing the app's Functions then loads no handler, model or SDK, and cold start stays
cheap. `tests/aos_core/test_operations.py` resolves every name, so a typo fails the suite, not a request.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ROUTE_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
MODEL_REF = "x-aos-model"  # the key of a model placeholder inside a raw schema (see `model`)


@functools.cache  # every request resolves its handler: look each name up once
def resolve(ref: str) -> Any:
    """The object `"package.module:attribute"` names."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def model(ref: str) -> dict[str, str]:
    """A placeholder for the pydantic model `ref` inside a raw JSON schema (e.g. in an `anyOf`); the document
    turns it into a `$ref` to the model's component schema and lists the model among the components."""
    _check_ref(ref, "model")
    return {MODEL_REF: ref}


def _check_ref(ref: str, what: str) -> None:
    if not _REF.match(ref):
        raise ValueError(f"{what} {ref!r} must look like 'package.module:attribute'")


@dataclass(frozen=True)
class Param:
    """A path or query parameter as the document describes it (the handler still checks the value)."""

    name: str
    where: Literal["path", "query"] = "query"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str | None = None


@dataclass(frozen=True)
class Reply:
    """One success answer: its body is the model `body` names, a raw schema, or nothing."""

    description: str
    body: str | Mapping[str, Any] | None = None
    links: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)  # name: (operation, params)
    headers: tuple[str, ...] = ()  # response headers worth describing (e.g. Location)
    media_type: str = "application/json"

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            _check_ref(self.body, "reply body")


@dataclass(frozen=True)
class HttpOperation:
    """One HTTP operation under `/api`. `role` None is anonymous (no function key either)."""

    name: str  # the Function's name and the document's operationId
    route: str  # Functions route template, relative to /api
    methods: tuple[str, ...]
    role: str | None
    handler: str  # "module:function", an `async (aos, ApiRequest, Caller) -> ApiResponse`
    summary: str
    replies: Mapping[int, Reply]
    problems: tuple[int, ...] = ()  # the 4xx/5xx statuses it answers with a problem body
    params: tuple[Param, ...] = ()  # path parameters are derived from the route unless described here
    body: str | Mapping[str, Any] | None = None  # the request body's model, or a raw schema
    body_required: bool = True
    has_body: bool = False  # size-limited, and replayable by `Idempotency-Key`
    durable_client: bool = False  # the Function gets a Durable client (entities, orchestrations)
    # "module:function", `(ApiRequest) -> bool`: True when a request reads only the warm kernel's in-memory facts
    # (thread-safe ones); the app then answers it on its own loop, with no hop to the kernel's (aos_core.runtime).
    in_memory: str | None = None
    include_in_schema: bool | tuple[str, ...] = True  # a tuple: only these methods are described
    extra_responses: Mapping[str, Any] = field(default_factory=dict)  # raw OpenAPI responses (rare)

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z][a-z0-9_]*$", self.name):
            raise ValueError(f"operation name {self.name!r} must be snake_case (it names a Function)")
        if not self.methods or not set(self.methods) <= _METHODS:
            raise ValueError(f"{self.name}: methods {self.methods!r} must be some of {sorted(_METHODS)}")
        _check_ref(self.handler, f"{self.name}: handler")
        if isinstance(self.body, str):
            _check_ref(self.body, f"{self.name}: body")
        if self.in_memory is not None:
            _check_ref(self.in_memory, f"{self.name}: in_memory")
        if not any(200 <= code < 300 for code in self.replies):
            raise ValueError(f"{self.name}: declare at least one 2xx reply")

    @property
    def described_methods(self) -> tuple[str, ...]:
        if isinstance(self.include_in_schema, tuple):
            return self.include_in_schema
        return self.methods if self.include_in_schema else ()

    @property
    def path(self) -> str:
        return f"/api/{self.route}"

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_ROUTE_PARAM.findall(self.route))


@dataclass(frozen=True)
class HttpApi:
    """The operations an app serves, composed from the areas' tuples; names and (route, method) are unique."""

    operations: tuple[HttpOperation, ...]

    @classmethod
    def compose(cls, *areas: Iterable[HttpOperation]) -> HttpApi:
        return cls(tuple(op for area in areas for op in area))

    def __post_init__(self) -> None:
        names: set[str] = set()
        routes: set[tuple[str, str]] = set()
        for op in self.operations:
            if op.name in names:
                raise ValueError(f"HTTP operation {op.name!r} is declared twice")
            names.add(op.name)
            for method in op.methods:
                key = (op.route.lower(), method)
                if key in routes:
                    raise ValueError(f"{method} /api/{op.route} is declared twice (again by {op.name!r})")
                routes.add(key)

    def get(self, name: str) -> HttpOperation:
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(name)

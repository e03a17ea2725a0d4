"""Functions route templates (ASP.NET Core syntax): `{name}`, `{name:int}`, `{name?}`, `{name=default}`, `{*rest}`.

Constraints: int, long, float, double, decimal, bool, guid, datetime, alpha, min(n), max(n), length(n),
length(a,b), minlength(n), maxlength(n), range(a,b), regex(expr); several joined with `:`. Literal segments
match case-insensitively. When several templates match a path, the most specific wins: literal before
constrained parameter before plain parameter before optional before catch-all, segment by segment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from aos_core.ascii_numbers import decimal_number
from aos_core.errors import ConfigError

_PARAM = re.compile(r"^\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)((?::[^=?]+)*)(\?)?(?:=(.*))?\}$")
_CONSTRAINT = re.compile(r"([a-z]+)(?:\((.*)\))?$")


def _is_number(value: str) -> bool:
    try:
        decimal_number(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    # [0-9], not \d: ASP.NET reads invariant-culture numbers, and \d takes any script's digits
    "int": lambda v: bool(re.fullmatch(r"-?[0-9]+", v)) and -(2**31) <= int(v) < 2**31,
    "long": lambda v: bool(re.fullmatch(r"-?[0-9]+", v)) and -(2**63) <= int(v) < 2**63,
    "float": _is_number, "double": _is_number, "decimal": _is_number,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _is_guid, "datetime": _is_datetime,
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
}


def _constraint(text: str, template: str) -> Callable[[str], bool]:
    match = _CONSTRAINT.match(text)
    if not match:
        raise ConfigError(f"route {template!r}: bad constraint {text!r}")
    name, arg = match.group(1), match.group(2)
    if arg is None and name in _SIMPLE:
        return _SIMPLE[name]
    try:
        if name == "regex" and arg is not None:
            pattern = re.compile(arg, re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
        nums = [int(a) for a in (arg or "").split(",")]
        checks: dict[str, Callable[[str], bool]] = {
            "min": lambda v: _SIMPLE["long"](v) and int(v) >= nums[0],
            "max": lambda v: _SIMPLE["long"](v) and int(v) <= nums[0],
            "range": lambda v: _SIMPLE["long"](v) and nums[0] <= int(v) <= nums[1],
            "minlength": lambda v: len(v) >= nums[0],
            "maxlength": lambda v: len(v) <= nums[0],
            "length": lambda v: len(v) == nums[0] if len(nums) == 1 else nums[0] <= len(v) <= nums[1],
        }
        return checks[name]
    except (KeyError, ValueError, IndexError, re.error):
        raise ConfigError(f"route {template!r}: unknown or malformed constraint {text!r}") from None


@dataclass
class _Segment:
    literal: str | None = None
    name: str | None = None
    checks: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    @property
    def rank(self) -> int:
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional or self.default is not None:
            return 3
        return 1 if self.checks else 2


def split_path(path: str) -> list[str]:
    # `path` is the raw (still percent-encoded) path, so an encoded "/" stays inside its segment.
    stripped = path.strip("/")
    return [unquote(p) if "%" in p else p for p in stripped.split("/")] if stripped else []


@dataclass
class RouteTemplate:
    """A parsed route template; `match(path)` gives the route parameters or None."""

    template: str
    segments: list[_Segment]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        segments: list[_Segment] = []
        parts = [p for p in template.strip("/").split("/") if p != ""]
        for i, part in enumerate(parts):
            if "{" not in part and "}" not in part:
                segments.append(_Segment(literal=part.lower()))
                continue
            match = _PARAM.match(part)
            if not match:
                raise ConfigError(f"route {template!r}: segment {part!r} must be a literal or one {{parameter}}")
            star, name, constraints, optional, default = match.groups()
            if star and i != len(parts) - 1:
                raise ConfigError(f"route {template!r}: a catch-all parameter must be the last segment")
            checks = [_constraint(c, template) for c in constraints.split(":") if c]
            segments.append(_Segment(name=name, checks=checks, optional=bool(optional), default=default,
                                     catch_all=bool(star)))
        names = [s.name for s in segments if s.name]
        if len(names) != len(set(names)):
            raise ConfigError(f"route {template!r}: a parameter name is used twice")
        return cls(template, segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.rank for s in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        return self.match_parts(split_path(path))

    def match_parts(self, parts: list[str]) -> dict[str, str] | None:
        """`match` for a path already split by `split_path` (a router splits it once for all its templates)."""
        params: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                rest = "/".join(parts[i:])
                if rest:
                    params[seg.name or ""] = rest
                elif seg.default is not None:
                    params[seg.name or ""] = seg.default
                return params
            if i >= len(parts):
                if seg.literal is None and (seg.optional or seg.default is not None):
                    if seg.default is not None:
                        params[seg.name or ""] = seg.default
                    continue
                return None
            value = parts[i]
            if seg.literal is not None:
                if value.lower() != seg.literal:
                    return None
                continue
            if not all(check(value) for check in seg.checks):
                return None
            params[seg.name or ""] = value
        return params if len(parts) <= len(self.segments) else None


@dataclass
class HttpRoute:
    template: RouteTemplate
    methods: frozenset[str] | None  # None: any method
    target: Any


class Router:
    """HTTP functions by route; `find` returns (route, params), or the methods the path allows."""

    def __init__(self) -> None:
        self._routes: list[HttpRoute] = []

    def add(self, template: str, methods: list[str] | None, target: Any) -> None:
        self._routes.append(HttpRoute(RouteTemplate.parse(template),
                                      frozenset(m.upper() for m in methods) if methods else None, target))
        self._routes.sort(key=lambda r: r.template.precedence)

    def find(self, method: str, path: str) -> tuple[HttpRoute | None, dict[str, str], set[str]]:
        allowed: set[str] = set()
        parts = split_path(path)
        first = parts[0].lower() if parts else None
        for route in self._routes:
            head = route.template.segments[0].literal if route.template.segments else None
            if head is not None and head != first:
                continue  # a literal first segment that differs: this template cannot match
            params = route.template.match_parts(parts)
            if params is None:
                continue
            if route.methods is None or method.upper() in route.methods:
                return route, params, allowed
            allowed |= route.methods
        return None, {}, allowed

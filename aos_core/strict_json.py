"""JSON from the outside, parsed strictly: what the standard library accepts but the kernel cannot keep is refused.
And JSON written strictly (`encoder`): NaN and infinities are refused, never written as tokens JSON lacks.

`json.loads` takes `NaN` and `Infinity` (not JSON; they would be stored as null), turns `1e999` into infinity,
raises RecursionError for deep nesting and ValueError for integers past Python's digit limit. Here each of
those, and bytes that are not UTF-8 or strings with lone surrogates (they cannot be stored as UTF-8), is a
`JsonRejected` whose message names the reason, so every edge can answer it with a 400.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, NoReturn

MAX_DEPTH = 64  # arrays and objects nested in each other
MAX_INT_DIGITS = 64  # far beyond any id, amount or count; JSON parsers elsewhere keep 15-17 digits anyway
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRejected(ValueError):
    """The input is not JSON the kernel accepts; the message says why."""


def _reject_constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRejected(f"an integer of {len(text.lstrip('-'))} digits is too large (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected(f"the number {text[:40]} is out of range")
    return value


def loads(raw: bytes | str) -> Any:
    """Parse `raw` (UTF-8 bytes or text); JsonRejected naming the reason if it is not acceptable JSON."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(f"the body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                               ) from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected(f"arrays and objects are nested too deep (at most {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"not valid JSON: {exc}") from None
    except ValueError as exc:  # what the hooks above miss, e.g. an int() limit
        raise JsonRejected(f"not acceptable JSON: {exc}") from None
    check(value)
    return value


def check(value: Any) -> None:
    """JsonRejected if `value` nests deeper than MAX_DEPTH or holds a string that is not valid Unicode text."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise JsonRejected("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JsonRejected(f"arrays and objects are nested too deep (at most {MAX_DEPTH} levels)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _not_json(value: object) -> NoReturn:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encoder(*, sort_keys: bool = False, ensure_ascii: bool = True) -> Callable[[Any], str]:
    """A compact JSON encoder (no spaces) for values written many times a second; ValueError for NaN, infinities
    and values nested too deep (or holding themselves), TypeError for what is not JSON.

    It calls the C encoder `json.dumps` uses, built once: `json.dumps` with options builds a new `JSONEncoder`
    and C encoder on every call, about half the cost of encoding a small document.
    """
    if c_make_encoder is None:  # an interpreter without the C accelerator
        fallback = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=sort_keys,
                                    ensure_ascii=ensure_ascii)
        return fallback.encode
    # markers=None: no bookkeeping against cycles; a value that holds itself ends in RecursionError, below.
    make = c_make_encoder(None, _not_json, encode_basestring_ascii if ensure_ascii else encode_basestring, None,
                          ":", ",", sort_keys, False, False)

    def encode(value: Any) -> str:
        try:
            return "".join(make(value, 0))
        except RecursionError:
            raise ValueError("the value is nested too deep, or holds itself, to be written as JSON") from None

    return encode

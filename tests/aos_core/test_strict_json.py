"""strict_json: what json.loads would accept but the kernel cannot keep is refused, naming the reason."""

from __future__ import annotations

import json

import pytest

from aos_core import strict_json
from aos_core.strict_json import JsonRejected


@pytest.mark.parametrize(("raw", "reason"), [
    (b"[" * 1000 + b"]" * 1000, "nested too deep"),  # json.loads: RecursionError
    (b"[" * 65 + b"]" * 65, "nested too deep"),  # parses, but deeper than MAX_DEPTH
    (b'{"n": ' + b"9" * 5000 + b"}", "5000 digits"),  # json.loads: ValueError (int digit limit)
    (b'{"n": -' + b"9" * 65 + b"}", "65 digits"),
    (b'{"v": NaN}', "NaN is not a JSON number"),  # json.loads: float('nan'), stored as null
    (b"[-Infinity]", "-Infinity is not a JSON number"),
    (b"1e999", "out of range"),  # json.loads: inf
    (b'"\xff"', "not valid UTF-8 (byte 0xff at offset 1)"),
    (b'{"k\\udc00": 1}', "lone UTF-16 surrogate"),  # cannot be encoded as UTF-8 to be stored
    (b"{oops", "not valid JSON"),
])
def test_unacceptable_json_names_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(JsonRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        strict_json.loads(raw)


def test_acceptable_json_parses_as_json_loads_would() -> None:
    raw = '{"a": [1, -2.5e3, "\\ud83d\\ude00", null, true], "deep": ' + "[" * 63 + "]" * 63 + "}"
    value = strict_json.loads(raw.encode())
    assert value["a"] == [1, -2500.0, "\U0001f600", None, True]
    assert strict_json.loads(b"-" + b"9" * 64) == -int("9" * 64)


@pytest.mark.parametrize(("options", "dumps"), [
    ({}, {"separators": (",", ":"), "allow_nan": False}),
    ({"sort_keys": True, "ensure_ascii": False},
     {"separators": (",", ":"), "allow_nan": False, "sort_keys": True, "ensure_ascii": False}),
])
def test_the_encoder_writes_what_json_dumps_writes(options: dict[str, bool], dumps: dict[str, object]) -> None:
    value = {"z": [1, -2.5e-300, 1e16, "é\U0001f600\n\"", None, True, {}], "a": {"1": 0.1, "b": []}, "3": "x"}
    assert strict_json.encoder(**options)(value) == json.dumps(value, **dumps)  # type: ignore[arg-type]
    assert strict_json.encoder(**options)("plain") == json.dumps("plain", **dumps)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "error"), [
    ({"v": float("nan")}, ValueError),
    ([float("-inf")], ValueError),
    ({"when": object()}, TypeError),
    ({(1, 2): "tuple key"}, TypeError),
])
def test_the_encoder_refuses_what_is_not_json(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        strict_json.encoder()(value)


def test_the_encoder_refuses_a_value_that_holds_itself_and_goes_on() -> None:
    loop: list[object] = []
    loop.append({"again": loop})
    encode = strict_json.encoder()
    with pytest.raises(ValueError, match="holds itself"):
        encode(loop)
    assert encode({"after": [1]}) == '{"after":[1]}'

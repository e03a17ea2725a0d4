"""strict_json: what json.loads would accept but the kernel cannot keep is refused, naming the reason."""

from __future__ import annotations

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

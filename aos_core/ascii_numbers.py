"""Numbers read from URLs and query strings: ASCII digits only, as clients and ASP.NET write them.

Python is more generous than that: `int()` and `float()` also read other scripts' digits ("\u0661\u0662" is 12)
and underscores ("1_0" is 10), and `str.isdigit()` also takes "\u00b2". A value that only looks like a
number to Python must be refused, not read as another one.
"""

from __future__ import annotations


def whole_number(text: str) -> int:
    """`text` as an int if it is ASCII digits only (no sign, no spaces, no underscores); else ValueError."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a whole number in ASCII digits: {text!r}")
    return int(text)


def decimal_number(text: str) -> float:
    """`text` as a float if it is ASCII with no underscores and `float()` reads it; else ValueError."""
    if not text.isascii() or "_" in text:
        raise ValueError(f"not a number in ASCII digits: {text!r}")
    return float(text)

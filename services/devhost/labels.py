"""Ids the local host gives its own bookkeeping (invocations, entity operations): labels, not secrets.

They come from `random.getrandbits` (reseeded in every forked instance), not `os.urandom`: a syscall per
operation showed in profiles of the entity path, and nothing guesses these to gain anything. Event ids, which a
client could race, stay `uuid4`.
"""

from __future__ import annotations

import random

_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits of a UUID
_V4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def uuid_text(bits: int) -> str:
    """128 `bits` as version-4 UUID text, formatted without `uuid.UUID`, whose checks cost more than the rest of
    an invocation's bookkeeping."""
    digits = f"{bits & _V4_CLEAR | _V4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def new_label() -> str:
    """A fresh random id in UUID form."""
    return uuid_text(random.getrandbits(128))

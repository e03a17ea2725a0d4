"""A context head is written with its log's deltas encoded once, at their own commit (`with_encoded_list`): the
text stored must be exactly the JSON of the head, whatever the other members hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.storage.keys import encode_value, with_encoded_list

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@given(st.dictionaries(st.text(), _JSON, max_size=5), st.lists(_JSON, max_size=6))
def test_the_text_is_the_json_of_the_object_with_the_list(value: dict[str, Any], items: list[Any]) -> None:
    encoded = with_encoded_list(value, "log", items, [encode_value(item) for item in items])
    expected = {**value, "log": items}
    assert json.loads(encode_value(encoded)) == expected
    assert dict(encoded) == expected  # the same object for code that reads it

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.ml.local_server import LocalScoringServer

API_KEY = "test-endpoint-key"


@pytest.fixture
def scoring_server() -> Iterator[LocalScoringServer]:
    """The local scoring server on a free 127.0.0.1 port, requiring API_KEY."""
    with LocalScoringServer(api_key=API_KEY) as server:
        yield server


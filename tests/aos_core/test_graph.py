from __future__ import annotations

import pytest

from aos_core.errors import RegistrationError
from aos_core.graph import topological_order


def test_dependencies_come_first_deterministically() -> None:
    order = topological_order({"ceo": ["cfo", "cto"], "cfo": ["ledger"], "cto": [], "ledger": []})
    assert order.index("ledger") < order.index("cfo")
    assert order.index("cfo") < order.index("ceo") and order.index("cto") < order.index("ceo")
    assert order == topological_order({"cto": [], "ledger": [], "cfo": ["ledger"], "ceo": ["cto", "cfo"]})


def test_missing_and_cycles_are_named() -> None:
    with pytest.raises(RegistrationError, match="'cfo' depends on 'ledger', which is not registered"):
        topological_order({"cfo": ["ledger"]})
    with pytest.raises(RegistrationError, match="dependency cycle: a -> b -> a"):
        topological_order({"a": ["b"], "b": ["a"]})

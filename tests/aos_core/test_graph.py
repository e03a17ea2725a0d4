from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aos_core.errors import RegistrationError
from aos_core.graph import topological_order


def test_dependencies_come_first_and_ties_go_in_name_order() -> None:
    order = topological_order({"ceo": ["cfo", "cto"], "cfo": ["ledger"], "cto": [], "ledger": []})
    assert order == ["cto", "ledger", "cfo", "ceo"]
    assert topological_order({"b": [], "a": ["c"], "c": []}) == ["b", "c", "a"]
    assert topological_order({}) == []


def test_missing_dependencies_are_named() -> None:
    with pytest.raises(RegistrationError, match='"cfo" depends on "ledger", which is not registered'):
        topological_order({"cfo": ["ledger"]})


@pytest.mark.parametrize(("deps", "cycle"), [
    ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
    ({"a": ["a"]}, "a -> a"),
    ({"x": [], "a": ["x", "b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
    ({"root": ["a"], "a": ["b"], "b": ["a"]}, "a -> b -> a"),  # a node behind the cycle is not part of it
    ({"a": ["b"], "b": ["c"], "c": ["b"]}, "b -> c -> b"),  # nor is the node the walk started from
])
def test_cycles_are_named_by_their_path(deps: dict[str, list[str]], cycle: str) -> None:
    with pytest.raises(RegistrationError, match=f"^dependency cycle: {cycle}$"):
        topological_order(deps)


def test_a_long_chain_does_not_recurse() -> None:
    chain = {f"n{i:05d}": [f"n{i - 1:05d}"] if i else [] for i in range(20_000)}
    assert topological_order(chain) == sorted(chain)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    names = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=3), unique=True, max_size=12))
    # A node may only depend on nodes listed before it: that makes the graph acyclic.
    return {n: draw(st.lists(st.sampled_from(names[:i]), max_size=3)) if i else [] for i, n in enumerate(names)}


@given(dags(), st.randoms())
def test_every_node_comes_after_its_dependencies_whatever_the_input_order(deps: dict[str, list[str]],
                                                                          rnd: random.Random) -> None:
    order = topological_order(deps)
    assert sorted(order) == sorted(deps)
    position = {n: i for i, n in enumerate(order)}
    assert all(position[d] < position[n] for n, needs in deps.items() for d in needs)
    shuffled = list(deps.items())
    rnd.shuffle(shuffled)
    assert topological_order(dict(shuffled)) == order

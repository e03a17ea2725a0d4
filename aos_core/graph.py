"""Dependency order: one topological sort, used for agent start order and workflow steps."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from aos_core.errors import RegistrationError


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after its dependencies; among nodes ready at the same time, the smallest name first.

    `deps` maps each node to the nodes it depends on. RegistrationError names a dependency that is not a node
    (`"cfo" depends on "ledger", which is not registered`) or a cycle (`dependency cycle: a -> b -> a`).
    Iterative (Kahn's algorithm with a heap), so a long chain of agents cannot overflow the stack.
    """
    graph = {node: sorted(set(needs)) for node, needs in deps.items()}
    for node in sorted(graph):
        for dep in graph[node]:
            if dep not in graph:
                raise RegistrationError(f'"{node}" depends on "{dep}", which is not registered')
    waiting = {node: len(needs) for node, needs in graph.items()}
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, needs in graph.items():
        for dep in needs:
            dependents[dep].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(graph):
        raise RegistrationError("dependency cycle: " + " -> ".join(_a_cycle(graph, set(order))))
    return order


def _a_cycle(graph: Mapping[str, list[str]], placed: set[str]) -> list[str]:
    # Every node left over sits on or behind a cycle; walking dependencies from the smallest one must
    # revisit a node, and the walk from that node's first visit is the cycle (closed by repeating it).
    node = min(n for n in graph if n not in placed)
    path: list[str] = []
    seen: dict[str, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(dep for dep in graph[node] if dep not in placed)
    return [*path[seen[node]:], node]

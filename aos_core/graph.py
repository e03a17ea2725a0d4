"""Dependency order: one topological sort, used for agent start order and workflow steps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aos_core.errors import RegistrationError


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Nodes after their dependencies (ties sorted). RegistrationError names a missing node or the cycle."""
    graph = {node: list(d) for node, d in deps.items()}
    for node, needs in graph.items():
        for dep in needs:
            if dep not in graph:
                raise RegistrationError(f"{node!r} depends on {dep!r}, which is not registered")
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = [*path[path.index(node):], node]
            raise RegistrationError("dependency cycle: " + " -> ".join(cycle))
        state[node] = 1
        for dep in sorted(graph[node]):
            visit(dep, [*path, node])
        state[node] = 2
        order.append(node)

    for node in sorted(graph):
        visit(node, [])
    return order

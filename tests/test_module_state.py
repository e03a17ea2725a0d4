"""No module-level mutable state besides the warm kernel (docs/architecture.md, "State"), checked on the source.

Services and agents get what they need from the kernel or its config, passed in; only the composition points
(the warm kernel in `aos_core/runtime.py`, the local host, the CLI's local mode) keep process state. So a
module of `aos_core/`, `services/` or `agents/` may not rebind a module global (`global x`) nor mutate a
dict, list or set it holds at module level (a registry, a cache, a table filled by imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("aos_core", "services", "agents")
# The composition points, and why each keeps what it keeps.
ALLOWED = {
    "aos_core/runtime.py": "the warm kernel of a Functions worker (its kernel loops)",
    "services/devhost/": "the local host: a composition point, like the Functions host",
    "services/cli/": "the CLI's local mode: a composition point",
    # OpenTelemetry's providers are process-global by its own design (set once per process); these modules
    # keep the handles to them and the one-time choice of exporter.
    "services/observability/telemetry.py": "the exporter chosen once per process (OpenTelemetry's global providers)",
    "services/observability/metrics.py": "instruments of the process-global OpenTelemetry meter",
    "services/observability/tracing.py": "the tracer provider (OpenTelemetry's is process-global)",
    "services/ml/telemetry.py": "the inference metrics sink and cache gauge on the process-global meter",
}
CONTAINERS = {"dict", "list", "set", "defaultdict", "OrderedDict", "deque", "Counter", "WeakSet", "WeakValueDictionary",
              "WeakKeyDictionary"}
MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add", "discard",
            "remove", "appendleft", "__setitem__"}


def _is_container(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in CONTAINERS
    return False


def module_state(source: str) -> list[str]:
    """`global` rebinding and module-level containers the module mutates, as "line: what" strings."""
    tree = ast.parse(source)
    containers: dict[str, int] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and _is_container(node.value):  # type: ignore[union-attr]
                containers[target.id] = node.lineno
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{node.lineno}: global {', '.join(node.names)}")
        mutated = None
        if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            for target in node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    mutated = target.value.id
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            if isinstance(node.func.value, ast.Name):
                mutated = node.func.value.id
        if mutated in containers and not _shadowed(tree, node, mutated):
            found.append(f"{node.lineno}: module-level {mutated} (line {containers[mutated]}) is mutated")
    return found


def _shadowed(tree: ast.Module, node: ast.AST, name: str) -> bool:
    # A function that binds the same name locally mutates its own object, not the module's.
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef) and any(n is node for n in ast.walk(func)):
            args = {a.arg for a in (*func.args.args, *func.args.kwonlyargs, *func.args.posonlyargs)}
            local = {t.id for n in ast.walk(func) if isinstance(n, ast.Assign) for t in n.targets
                     if isinstance(t, ast.Name)}
            if name in args | local:
                return True
    return False


def _allowed(name: str) -> bool:
    return any(name == key or (key.endswith("/") and name.startswith(key)) for key in ALLOWED)


def test_no_module_keeps_mutable_state_outside_the_composition_points() -> None:
    broken = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if not _allowed(name):
                broken += [f"{name}:{line}" for line in module_state(path.read_text())]
    assert not broken, ("module-level mutable state (pass it in from the kernel or its config instead; "
                        "see docs/architecture.md):\n" + "\n".join(broken))


def test_every_allowed_module_still_exists() -> None:
    assert all((ROOT / key).exists() for key in (*ALLOWED, *REACH_ALLOWED))


WARM_KERNEL = {"get_aos", "with_aos", "run_with_aos", "kernel_loop"}
# Beyond the composition points, the functions the app registers from a service (they are app wiring).
REACH_ALLOWED = {
    "services/devhost/": "the local host",
    "services/cli/": "the CLI's local mode",
    "services/workflows/functions.py": "the orchestrator and activity functions the app registers",
}


def test_only_the_composition_points_reach_for_the_warm_kernel() -> None:
    broken = []
    for folder in ("services", "agents"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if any(name == key or (key.endswith("/") and name.startswith(key)) for key in REACH_ALLOWED):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "aos_core.runtime":
                    broken += [f"{name}:{node.lineno} imports {a.name}" for a in node.names if a.name in WARM_KERNEL]
    assert not broken, "take the kernel as a parameter from the trigger that calls you:\n" + "\n".join(broken)


@pytest.mark.parametrize(("source", "caught"), [
    ("_REGISTRY = {}\ndef register(k, v):\n    _REGISTRY[k] = v\n", True),
    ("_items: list[int] = []\ndef add(x):\n    _items.append(x)\n", True),
    ("_cache = dict()\ndef forget():\n    _cache.clear()\n", True),
    ("_default = None\ndef use(x):\n    global _default\n    _default = x\n", True),
    ("TABLE = {'a': 1}\ndef get(k):\n    return TABLE[k]\n", False),  # read only: a constant
    ("_seen = {}\ndef f():\n    _seen = {}\n    _seen['x'] = 1\n", False),  # a local of the same name
])
def test_the_checker_catches_registries_and_globals_and_spares_constants(source: str, caught: bool) -> None:
    assert bool(module_state(source)) is caught

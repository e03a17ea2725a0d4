"""The layers' import rules (docs/architecture.md), checked on the source rather than trusted.

- The kernel (`aos_core`) imports no service, agent, app, Azure SDK, mcp or OpenTelemetry module. Its
  composition root, `aos_core/runtime.py`, is the one exception, and only inside functions, so that
  `import aos_core` (and `import function_app`) never loads them.
- Services import no agent; services and agents never import the app (`function_app`) nor the local host
  (`services.devhost`), except the local host itself and the CLI, which starts it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL_FORBIDDEN = ("services", "agents", "function_app", "azure", "mcp", "opentelemetry")
COMPOSITION_ROOT = "aos_core/runtime.py"


def _imports(path: Path, root: Path = ROOT) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    top = {id(node) for node in tree.body} | {id(n) for node in tree.body if isinstance(node, ast.If)
                                              for n in node.body}  # `if TYPE_CHECKING:` blocks count as top
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((base, node.lineno, id(node) in top))
    return found


def _within(module: str, *roots: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_kernel_imports_no_service_agent_app_or_cloud_sdk() -> None:
    broken = []
    for path in _sources("aos_core"):
        name = str(path.relative_to(ROOT))
        for module, line, at_top in _imports(path):
            if _within(module, *KERNEL_FORBIDDEN) and (name != COMPOSITION_ROOT or at_top):
                broken.append(f"{name}:{line} imports {module}")
    assert not broken, "the kernel must not import these (see docs/architecture.md):\n" + "\n".join(broken)


@pytest.mark.parametrize("folder", ["services", "agents"])
def test_services_and_agents_never_import_the_app_or_the_local_host(folder: str) -> None:
    broken = []
    for path in _sources(folder):
        name = str(path.relative_to(ROOT))
        hosts_it = name.startswith(("services/devhost/", "services/cli/"))
        for module, line, _ in _imports(path):
            if _within(module, "function_app") or (_within(module, "services.devhost") and not hosts_it):
                broken.append(f"{name}:{line} imports {module}")
            if folder == "services" and _within(module, "agents"):
                broken.append(f"{name}:{line} imports {module}")
    assert not broken, "\n".join(broken)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    # The rules above are only as good as the parser: a lazy import and a relative one must be found.
    sample = tmp_path / "aos_core" / "probe.py"
    sample.parent.mkdir()
    sample.write_text("def f():\n    from services.storage import X\nfrom . import kernel\n")
    found = _imports(sample, root=tmp_path)
    assert ("services.storage", 2, False) in found and ("aos_core", 3, True) in found

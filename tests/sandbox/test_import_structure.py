"""The sandbox's module structure: no import cycles, and no imports of production code.

Walks every module of `nublado.sandbox` with `ast`, counting imports at any
level (function-level and ``if TYPE_CHECKING:`` ones too): a cycle hidden behind
a late import is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nublado.sandbox

_PACKAGE = "nublado.sandbox"
_ROOT = Path(nublado.sandbox.__file__).parent
# Production modules the test double must not depend on.
_FORBIDDEN = ("nublado.kube", "nublado.config", "nublado.render", "nublado.services", "nublado.api")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in _ROOT.rglob("*.py"):
        parts = path.relative_to(_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((_PACKAGE, *parts))] = path
    return modules


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module ``module`` imports, absolute names (submodules where ``from . import x``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & modules.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)  # a name defined in the module (or package) itself
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the package's modules, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in graph:
                continue
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_cycle_detector_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_sandbox_modules_import_no_cycle() -> None:
    graph = _graph()
    assert "nublado.sandbox.cluster" in graph
    assert "nublado.sandbox.kubelet" in graph["nublado.sandbox.cluster"]
    assert _cycle(graph) is None


def test_sandbox_imports_no_production_module() -> None:
    offending = {
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if any(target == f or target.startswith(f"{f}.") for f in _FORBIDDEN)
    }
    assert offending == set()

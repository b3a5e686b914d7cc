"""The package's layout is its architecture: subpackages that say what they own, no import circle,
and a request path that the read side never reaches into (issue 27)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "otel_monitor"
#: the modules that only read what the request path recorded
READ_SIDE = ("otel_monitor.analytics", "otel_monitor.alerts", "otel_monitor.metrics")
REQUEST_PATH = "otel_monitor.request"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(name: str) -> list[tuple[str, list[str]]]:
    """``[(module, [names imported from it]), ...]`` of ``name``'s imports of our own modules, at
    module level or inside functions (a lazy import is still a dependency); not the ones under
    ``if TYPE_CHECKING:`` (annotations only)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                plain = []
                for alias in child.names:
                    if f"{target}.{alias.name}" in MODULES:  # from package import module
                        found.append((f"{target}.{alias.name}", []))
                    else:
                        plain.append(alias.name)
                if plain and target in MODULES:
                    found.append((target, plain))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, []) for alias in child.names if alias.name in MODULES)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def dependencies(name: str) -> set[str]:
    """The modules ``name`` imports, with the packages whose ``__init__`` that import runs."""
    result = set()
    for target, _names in imports_of(name):
        parts = target.split(".")
        for end in range(2, len(parts) + 1):
            prefix = ".".join(parts[:end])
            # a module inside a package is imported while that package's __init__ already runs
            if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                result.add(prefix)
    return result


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_cycle_finder_finds_a_circle_of_three_and_ignores_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_of_the_package_imports_itself_back_through_others():
    graph = {name: dependencies(name) & set(MODULES) for name in MODULES}
    assert cycles(graph) == []


def test_the_read_side_never_imports_the_request_path():
    reached = {
        (name, target)
        for name in MODULES
        if name.startswith(READ_SIDE)
        for target, _ in imports_of(name)
        if target.startswith(REQUEST_PATH)
    }
    assert sorted(reached) == []


def test_no_module_outside_the_request_path_imports_its_private_names():
    private = sorted(
        (name, target, imported)
        for name in MODULES
        if not name.startswith(REQUEST_PATH)
        for target, names in imports_of(name)
        if target.startswith(REQUEST_PATH)
        for imported in names
        if imported.startswith("_")
    )
    assert private == []


def test_each_subpackage_says_what_it_owns_and_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name in ("examples",):
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in docstring, init.relative_to(ROOT)


def test_no_module_inspects_the_stack_to_learn_who_called_it():
    # the sampling profiler reads other threads' stacks (sys._current_frames); nothing reads its caller's
    callers = sorted(
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if "_getframe" in path.read_text() or "inspect.stack" in path.read_text()
    )
    assert callers == []

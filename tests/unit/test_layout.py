"""The house rules of ARCHITECTURE.md that a refactor could quietly break: no import circle between modules of
dailyfeed/ (counting imports inside functions too), and the write path (content, activity) never reaching into the
restore jobs: it knows dead letters only through the dailyfeed.deadletters package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dailyfeed"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node that can run: the body of `if TYPE_CHECKING:` is left out (it only names types)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
                # `from pkg import module` runs pkg/__init__.py too: it imports the package as well as the module
                # (but for a package the importing module is inside, whose __init__.py has run before it)
                packages = [] if submodules and name.startswith(f"{target}.") else [target]
                graph[name].update(m for m in (submodules + packages) if m in modules and m != name)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto dailyfeed's top-level packages and modules (dailyfeed.ops, dailyfeed.events)."""

    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    folded: dict[str, set[str]] = {package(name): set() for name in graph}
    for name, targets in graph.items():
        folded[package(name)].update(package(t) for t in targets if package(t) != package(name))
    return folded


def test_no_import_circle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_circle_between_packages():
    assert cycles(package_graph(import_graph())) == []


def test_telemetry_is_a_leaf():
    """Metrics, tracing and logs import nothing of dailyfeed but the shared language, and no Flask."""
    graph = package_graph(import_graph())
    assert graph["dailyfeed.telemetry"] <= {"dailyfeed.events", "dailyfeed.config"}
    telemetry = [path for name, path in _modules().items() if name.startswith("dailyfeed.telemetry")]
    imported = {
        (path.name, alias.name if isinstance(node, ast.Import) else node.module or "")
        for path in telemetry
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert telemetry and not {(name, module) for name, module in imported if module.split(".")[0] == "flask"}


def test_the_cycle_check_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_write_path_imports_dead_letters_only_from_their_package():
    graph = import_graph()
    write_path = [name for name in graph if name.startswith(("dailyfeed.content", "dailyfeed.activity"))]
    assert write_path
    reaching = {name: sorted(m for m in graph[name] if m.startswith("dailyfeed.restore")) for name in write_path}
    assert {name: found for name, found in reaching.items() if found} == {}
    assert any(m.startswith("dailyfeed.deadletters") for m in graph["dailyfeed.content.publishing"])

"""The layering rules of ARCHITECTURE.md, read from the source (AST, lazy imports included).

Every ``import`` in ``python/roost`` becomes an edge, also those inside functions (a lazy import
still runs, later); only ``if TYPE_CHECKING:`` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "python"
PACKAGE = "roost"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool

    def __str__(self) -> str:
        kind = "lazy import" if self.lazy else "import"
        return f"{self.source} -> {self.target} ({kind}, line {self.line})"


def module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


MODULES = module_files()
#: Extension modules, known by their stubs (``roost/_native.pyi``): import targets, never sources.
EXTENSIONS = {
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / PACKAGE).rglob("*.pyi")
    if not path.with_suffix(".py").exists() and path.name != "__init__.pyi"
}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Imports(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.depth = 0  # > 0 inside a function: the import is lazy
        self.edges: list[Edge] = []

    def add(self, target: str, node: ast.stmt) -> None:
        edge = Edge(self.module, target, node.lineno, self.depth > 0)
        if within(target, PACKAGE) and edge not in self.edges:
            self.edges.append(edge)

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]  # noqa: N815

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = resolve(self.module, node)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            self.add(candidate if candidate in MODULES or candidate in EXTENSIONS else base, node)


def parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))


def all_edges() -> list[Edge]:
    edges: list[Edge] = []
    for module in MODULES:
        visitor = Imports(module)
        visitor.visit(parse(module))
        edges.extend(visitor.edges)
    return edges


EDGES = all_edges()


def is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is a few hundred edges, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def explain(component: list[str], edges: list[Edge]) -> str:
    members = set(component)
    inside = [str(edge) for edge in edges if edge.source in members and edge.target in members]
    return "circle among " + ", ".join(component) + ":\n    " + "\n    ".join(inside)


def side_package_uses_private_sdk(edge: Edge) -> bool:
    return any(
        within(edge.source, side) and not within(edge.target, side) and is_private(edge.target)
        for side in (f"{PACKAGE}.cli", f"{PACKAGE}.testing")
    )


def chunker_reaches_network(edge: Edge) -> bool:
    forbidden = (f"{PACKAGE}.client", f"{PACKAGE}.resources", f"{PACKAGE}._push", f"{PACKAGE}._roost")
    return within(edge.source, f"{PACKAGE}.chunker") and (
        edge.target == PACKAGE or any(within(edge.target, bad) for bad in forbidden)
    )


def transport_knows_resource(edge: Edge) -> bool:
    return within(edge.source, f"{PACKAGE}._transport") and within(edge.target, f"{PACKAGE}.resources")


RULES = {
    "roost.cli and roost.testing import only the public API (no roost._x)": side_package_uses_private_sdk,
    "roost.chunker imports neither the client, the resources nor the push engine": chunker_reaches_network,
    "roost._transport imports no resource": transport_knows_resource,
}


def test_the_graph_sees_the_tree() -> None:
    # Guards the parser: a known module-level edge and a known lazy one must be found.
    assert any(e.source == "roost._roost" and e.target == "roost.client" and not e.lazy for e in EDGES)
    assert any(
        e.source == "roost.resources.roosts" and e.target.startswith("roost._push") and e.lazy for e in EDGES
    )


def test_no_import_circles_in_roost() -> None:
    found = cycles(EDGES)
    assert found == [], "\n".join(explain(component, EDGES) for component in found)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_layering_rule(rule: str) -> None:
    broken = [str(edge) for edge in EDGES if RULES[rule](edge)]
    assert broken == [], f"{rule}:\n  " + "\n  ".join(broken)


def builds_http_client(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in {"AsyncClient", "Client"}


def calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def test_resources_build_no_http_client_of_their_own() -> None:
    offenders = [
        f"{module} line {node.lineno}"
        for module in MODULES
        if within(module, f"{PACKAGE}.resources")
        for node in calls(parse(module))
        if builds_http_client(node)
    ]
    assert offenders == [], "resources must go through RoostClient / the storage client: " + ", ".join(
        offenders
    )


def test_the_checks_catch_what_they_claim() -> None:
    # The rules are only as good as their detectors: feed each a known-bad case.
    assert cycles([Edge("roost.a", "roost.b", 1, False), Edge("roost.b", "roost.a", 9, True)]) == [
        ["roost.a", "roost.b"]
    ]
    assert [builds_http_client(call) for call in calls(ast.parse("httpx.AsyncClient(base_url=x)"))] == [True]
    assert [builds_http_client(call) for call in calls(ast.parse("self._http.request(path)"))] == [False]
    assert side_package_uses_private_sdk(Edge("roost.cli._app", "roost._wire", 1, False))
    assert not side_package_uses_private_sdk(Edge("roost.cli._app", "roost.cli._output", 1, False))
    assert chunker_reaches_network(Edge("roost.chunker._cache", "roost.client", 1, True))
    assert transport_knows_resource(Edge("roost._transport.storage", "roost.resources.roosts", 1, True))

"""Layers point down only: no import circle among facelab's modules.

Every import counts, including the ones inside functions (a lazy import only hides a circle from
the interpreter, not from a reader); imports under ``if TYPE_CHECKING:`` do not run and do not
count.  A package's ``__init__`` importing its own submodules is how packages work and is not a
circle by itself."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facelab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST):
    """Import nodes, skipping ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for stmt in node.orelse for n in _runtime_imports(stmt))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in files else module)
            else:
                targets.update(alias.name for alias in node.names)
        parent_packages = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t in files and t != name and t not in parent_packages}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_check_sees_a_circle_and_lazy_imports():
    graph = import_graph()
    assert "facelab.models.zoo" in graph["facelab.models.shallow"] or "facelab.models.shallow" in graph["facelab.models.zoo"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_models_do_not_reach_up():
    """The model zoo sits below faces, metrics, evaluation and methods."""
    above = ("facelab.faces", "facelab.metrics", "facelab.evaluation", "facelab.methods", "facelab.experiments")
    graph = import_graph()
    offenders = {m: sorted(t for t in ts if t.startswith(above))
                 for m, ts in graph.items() if m.startswith("facelab.models")}
    assert {m: t for m, t in offenders.items() if t} == {}

"""The package's shape, checked: no import cycles inside `rag/` (imports inside functions count;
those under `if TYPE_CHECKING:` never run and do not), only the edges import `rag.api`, the CLI
stays light to import, every domain error has an HTTP status, and
importing `rag` keeps NumPy's BLAS to one thread."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import rag.errors
from rag.api.errors import STATUS

PACKAGE = Path(rag.errors.__file__).resolve().parent
HEAVY = ("faiss", "bm25s", "torch", "openvino")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(name: str, path: Path) -> set[str]:
    """The `rag` modules `name` imports, wherever in it (function bodies included). `from a.b import
    c` names the module `a.b.c` when there is one, else `a.b`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1]
                                    + ([base] if base else []))
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_counts_function_imports_and_skips_type_checking(tmp_path):
    assert "rag.embedding.export" in GRAPH["rag.embedding"]  # imported inside build_embedder
    assert "rag.embedding" not in GRAPH["rag.embedding.cache"]  # only under TYPE_CHECKING


def test_only_the_edges_import_the_api():
    outside = {name: sorted(m for m in deps if m == "rag.api" or m.startswith("rag.api."))
               for name, deps in GRAPH.items()
               if not (name == "rag.api" or name.startswith("rag.api.") or name == "rag.cli")}
    assert {name: deps for name, deps in outside.items() if deps} == {}


def test_the_cli_imports_no_heavy_library():
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, rag.cli; print([m for m in {HEAVY!r} if m in sys.modules])"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_every_domain_error_has_an_http_status():
    errors = [cls for _, cls in inspect.getmembers(rag.errors, inspect.isclass)
              if issubclass(cls, rag.errors.RagError) and cls is not rag.errors.RagError]
    assert len(errors) >= 9
    assert [cls.__name__ for cls in errors if cls not in STATUS] == []


def test_comments_name_no_issue_or_session():
    """Comments say why, with sources a newcomer can read; not which ticket or session."""
    pattern = re.compile(r"\b(?:[Ii]ssue\s*#?\d+|issue's note|quality issue|the \w+ issue\b|session \d+|stop \d+)")
    this = Path(__file__).resolve()
    files = [p for root in ("rag", "tests", "bench") for p in sorted((PACKAGE.parent / root).rglob("*.py"))
             if p.resolve() != this]
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_every_package_says_its_job():
    packages = [p for p in sorted(PACKAGE.rglob("__init__.py"))]
    assert len(packages) >= 9
    assert [str(p.relative_to(PACKAGE.parent)) for p in packages
            if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))] == []


def test_blas_runs_on_one_thread_unless_the_user_says_otherwise():
    probe = "import os, rag; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    ours = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    theirs = subprocess.run([sys.executable, "-c", probe], env=env | {"OPENBLAS_NUM_THREADS": "2"},
                            capture_output=True, text=True, check=True)
    assert (ours.stdout.strip(), theirs.stdout.strip()) == ("1", "2")

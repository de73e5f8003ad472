"""How workers/ imports itself: no cycles, no late imports without a reason, and the
worker processes' import of prometheus_client left to Dramatiq.

Imports inside functions once hid a cycle (demo <-> supervisor); these tests read the
source, so a new cycle or an unexplained late import fails here, not in review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ROOT / "workers"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path for path in WORKERS.rglob("*.py") if "migrations" not in path.parts
    }


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))


def _import_graph() -> dict[str, set[str]]:
    modules = _sources()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _late_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or above the run of imports it belongs to."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and (
        not lines[above].strip() or lines[above].strip().startswith(("from ", "import "))
    ):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def test_workers_modules_import_each_other_without_cycles() -> None:
    # Given the module-level imports of every module in workers/
    graph = _import_graph()

    # When its strongly connected components are found
    cycles = _cycles(graph)

    # Then none holds more than one module
    assert graph["workers.processes.supervisor"], "the graph reads no imports at all"
    assert cycles == []


def test_imports_inside_functions_say_why() -> None:
    # Given every import written inside a function in workers/
    unexplained = []
    for name, path in _sources().items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in _late_imports(ast.parse(text)):
            # Then each has a comment giving its reason
            if not _has_reason(lines, node.lineno):
                unexplained.append(f"{name}:{node.lineno}")
    assert unexplained == []


def test_a_late_import_without_a_comment_is_found() -> None:
    # Given a function importing without a reason, and one with a reason above its imports
    bare = "def f():\n    import json\n    return json\n"
    explained = "def f():\n    # the SDK is heavy\n    import json\n\n    import csv\n"

    # When their late imports are checked
    def unexplained(source: str) -> list[int]:
        lines = source.splitlines()
        return [
            n.lineno for n in _late_imports(ast.parse(source)) if not _has_reason(lines, n.lineno)
        ]

    # Then only the bare one is reported
    assert unexplained(bare) == [2]
    assert unexplained(explained) == []


def test_a_cycle_between_two_modules_is_found() -> None:
    # Given two modules that import each other and a third that imports one of them
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}

    # When cycles are looked for / Then the pair is reported, alone
    assert _cycles(graph) == [["a", "b"]]


def test_worker_modules_leave_prometheus_client_to_dramatiq() -> None:
    # Given a fresh interpreter, as a Dramatiq worker process starts
    probe = (
        "import sys\n"
        "import workers.cli.worker, workers.runtime.actors\n"
        "print('prometheus_client' in sys.modules)\n"
    )

    # When it imports what a worker process and `paylink worker` import
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PAYLINK_WORKER_METRICS": "1"},
    )

    # Then prometheus_client is not imported yet: Dramatiq's Prometheus middleware must
    # import it after setting the multiprocess directory, or the group's metrics are lost
    assert done.stdout.strip() == "False", done.stderr

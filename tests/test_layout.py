"""The code's shape, read from the source with `ast`: no import cycle in `pipelines/`, no
function over 70 lines. A module's length follows its concern (no line count).

Every import counts, also one inside a function or under `TYPE_CHECKING`: a cycle hidden that
way is still two modules that cannot be read, or split, one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pipelines"
MAX_FUNCTION_LINES = 70


def module_files(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (packages by __init__)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) `from` import refers to."""
    if level == 0:
        return target or ""
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `module` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            names = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                for a in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def import_graph(root: Path = ROOT / PACKAGE) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def test_no_import_cycle_in_pipelines() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_through_a_function_local_import_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pipelines"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipelines.sub.a import f\n"
    )
    a, b = "pipelines.sub.a", "pipelines.sub.b"
    assert find_cycle(import_graph(pkg)) == [a, b, a]
    (pkg / "sub" / "b.py").write_text("import pipelines\n")  # the top package only: no cycle
    assert find_cycle(import_graph(pkg)) is None


def long_functions(root: Path = ROOT / PACKAGE) -> list[str]:
    """`path:line name (N lines)` for every function longer than MAX_FUNCTION_LINES, decorators
    and docstring included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > MAX_FUNCTION_LINES:
                    where = path.relative_to(ROOT)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_70_lines() -> None:
    assert long_functions() == []


SOURCE = f"{PACKAGE}.neuron"


def test_the_source_imports_nothing_of_the_runner_the_warehouse_or_the_commands() -> None:
    """`pipelines/neuron/` is a plain dlt source: settings and plain data in, rows and state out.
    What it would need of the warehouse is read by the runner and handed in (`SyncRun.stored`);
    an import of anything above it is the first step to reading the warehouse again."""
    outside = {
        module: sorted(name for name in imported if not name.startswith(SOURCE))
        for module, imported in import_graph().items()
        if module.startswith(SOURCE)
    }
    assert {module: names for module, names in outside.items() if names} == {}

"""The code's shape: no import cycles, the public API facade, the old module paths."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("harness", "plugins")


def _modules() -> dict[str, str]:
    """Dotted module name -> source path for every module under harness/ and plugins/."""
    found = {}
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[:-len(".__init__")]
                found[dotted] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: str, module: str, known: set[str]) -> set[str]:
    """The project modules ``module`` imports at run time, at module level or inside a
    function (both are real dependencies); imports under ``if TYPE_CHECKING:`` are not."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_package = path.endswith("__init__.py")
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[:len(parts) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
            visit(child)

    visit(tree)
    return {name for name in found if name in known and name != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for node in sorted(graph):
        if node not in index:
            strong(node)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_no_import_cycles_in_harness_or_plugins():
    graph = import_graph()
    assert len(graph) > 60  # the walk found the code
    assert "harness.run.runner" in graph["harness.run.worker"]  # and its imports
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_harness_modules_do_not_import_the_facade():
    """Only plugins and third parties import ``from harness import ...``; the core imports
    the defining modules, so the facade can never close a cycle."""
    graph = import_graph()
    inside = [name for name, deps in graph.items()
              if name.startswith("harness.") and "harness" in deps]
    assert inside == []


def test_the_facade_exports_exactly_its_table_and_each_name_resolves():
    import harness

    assert sorted(harness.__all__) == sorted(["__version__", *harness._EXPORTS])
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    from harness.context import ModelSpec
    from harness.markers import hookimpl

    assert harness.ModelSpec is ModelSpec and harness.hookimpl is hookimpl


def test_importing_the_facade_loads_neither_tensorflow_nor_numpy():
    code = ("import sys, harness; from harness import hookimpl, ModelSpec, BenchError, Case; "
            "print(sorted(m for m in ('tensorflow', 'numpy', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "['yaml']"  # Case's module reads YAML overrides


@pytest.mark.parametrize("old, name", [
    ("harness.plugins", "hookimpl"),
    ("harness.context", "ModelSpec"),
    ("harness.report", "write_atomic"),
    ("harness.report", "capture_environment"),
    ("harness.runner", "device_options"),
    ("harness.session", "execute"),
    ("harness.launch", "Hosts"),
    ("harness.html_report", "render_html"),
    ("harness.ranktable", "rank_table"),
    ("harness.devices.cpu", "cache_dir"),
])
def test_old_import_paths_still_work(old, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(old)
        assert getattr(module, name) is not None


def test_a_moved_module_warns_with_its_new_path():
    sys.modules.pop("harness.throughput", None)
    with pytest.warns(DeprecationWarning, match="harness.throughput moved to harness.run.throughput"):
        importlib.import_module("harness.throughput")

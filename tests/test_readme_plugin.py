"""The README's plugin example, exactly as written there, runs through the public API."""

from __future__ import annotations

import ast
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.core


def readme_plugin_source() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("## Writing a plugin"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return next(b for b in blocks if b.startswith("# mypkg/bench_plugin.py"))


def test_the_example_imports_only_the_public_api():
    tree = ast.parse(readme_plugin_source())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "harness" in modules
    assert modules <= {"harness", "harness.tfcompat"}, modules


@pytest.mark.parametrize("engine", ["auto", "graph"])  # graph: the builtin eval in a session
def test_the_readme_plugin_trains_and_evaluates(bench_run, tmp_path, engine):
    path = tmp_path / "readme_bench_plugin.py"
    path.write_text(readme_plugin_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("readme_bench_plugin", path)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    outcome = bench_run({"model": "linreg", "batch_size": 64, "engine": engine,
                         "train": {"steps": 200, "warmup_steps": 5, "log_every": 20}},
                        plugins=[plugin])
    assert outcome.report["status"] == "ok", outcome.report["results"][0]["error"]
    result = outcome.report["results"][0]
    assert result["loss"]["last"] < result["loss"]["first"] / 10
    # predicting the mean of y = 3x + 1 on [0, 1) has an MAE of 0.75
    assert result["accuracy"]["mae"] < 0.3

"""Every hook spec is documented and exercised by some test (datasette's rule)."""

from __future__ import annotations

import inspect
import os

import pytest

from harness import hookspecs

pytestmark = pytest.mark.core
HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "bench_spec")]


def test_the_design_hooks_exist():
    assert set(HOOKS) >= {"build_dataset", "build_model", "configure_npu", "evaluate",
                          "register_devices", "register_models", "environment",
                          "report_written", "register_commands"}


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_and_tested(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 60, f"{name}: the spec needs a docstring"
    for param in inspect.signature(fn).parameters:
        assert param in doc or len(inspect.signature(fn).parameters) == 1, (name, param)
    sources = ""
    for root, _dirs, files in os.walk(HERE):
        for f in files:
            if f.endswith(".py") and f != "test_hookspecs.py":
                sources += open(os.path.join(root, f), encoding="utf-8").read()
    assert f"def {name}(" in sources or f"{name}=" in sources, f"no test implements {name}"

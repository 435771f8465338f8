"""Old module paths that moved in 0.1 (``harness.runner`` -> ``harness.run.runner``, ...).

Plugins written against the flat layout keep importing: an old path resolves to a module
that looks each name up in the new modules, with a DeprecationWarning that names the new
path (or ``from harness import NAME``, the public API).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Any

MOVED: dict[str, tuple[str, ...]] = {
    "harness.defaults": ("harness.fallbacks",),
    "harness.runner": ("harness.run.runner", "harness.run.plan", "harness.run.train_step"),
    "harness.session": ("harness.run.session", "harness.run.plan"),
    "harness.launch": ("harness.run.launch", "harness.run.plan", "harness.run.slurm"),
    "harness.worker": ("harness.run.worker",),
    "harness.events": ("harness.run.events",),
    "harness.progress": ("harness.run.progress",),
    "harness.throughput": ("harness.run.throughput", "harness.run.result"),
    "harness.report": ("harness.reports.store", "harness.reports.environment",
                       "harness.reports.summary", "harness.run.result"),
    "harness.report_writers": ("harness.reports.markdown",),
    "harness.html_report": ("harness.reports.html",),
    "harness.plots": ("harness.reports.plots",),
    "harness.compare": ("harness.reports.compare",),
    "harness.import_log": ("harness.reports.import_log",),
    "harness.mlperf_log": ("harness.reports.mllog",),
    "harness.tensorboard_log": ("harness.reports.tensorboard",),
    "harness.ranktable": ("harness.devices.ranktable",),
}


class _Alias(types.ModuleType):
    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"moved: see {', '.join(targets)}")
        self._targets = targets

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"{self.__name__}.{attr} is gone; it moved to one of "
                             f"{', '.join(self._targets)}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {targets[0]}; plugins should import from "
                      f"'harness' (the public API)", DeprecationWarning, stacklevel=3)
        return _Alias(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())

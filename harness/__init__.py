"""zoobench: the public API for plugin authors (``from harness import hookimpl, ModelSpec``).

Everything a plugin needs is importable from here; the modules behind these names may move
between releases, these names will not. Imports are lazy: ``import harness`` loads nothing
else (``bench --help`` stays fast, TensorFlow is never imported here).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness import _moved
from harness.version import __version__

# name -> the module that defines it
_EXPORTS = {
    "hookimpl": "harness.markers",
    "hookspec": "harness.markers",
    "BenchError": "harness.errors",
    "at": "harness.errors",
    "EXIT_OK": "harness.errors",
    "EXIT_BAD_INPUT": "harness.errors",
    "EXIT_RUN_FAILED": "harness.errors",
    "Case": "harness.case",
    "DataSpec": "harness.case",
    "TrainSpec": "harness.case",
    "EvalSpec": "harness.case",
    "ModelSpec": "harness.context",
    "RunContext": "harness.context",
    "Task": "harness.task",
    "PluginError": "harness.errors",
    "DeviceBackend": "harness.devices.base",
    "ModelRegistry": "harness.registry",
    "DeviceRegistry": "harness.registry",
    "CaseFormatRegistry": "harness.registry",
    "ReportWriterRegistry": "harness.registry",
    "LogParserRegistry": "harness.registry",
    "ModelInfo": "harness.registry",
    "data_group": "harness.datacli",
    "write_atomic": "harness.reports.store",
    "load_report": "harness.reports.store",
    "cache_dir": "harness.host",
    "ParsedLog": "harness.reports.import_log",
    "read_log_lines": "harness.reports.import_log",
    "LOG_NUMBER": "harness.reports.import_log",
    "Result": "harness.run.result",
    "Status": "harness.run.result",
    "RunOutcome": "harness.run.session",
    "CliResult": "harness.testing",
    "read_user_text": "harness.userfiles",
    "read_user_bytes": "harness.userfiles",
    "open_user_text": "harness.userfiles",
    "parse_json": "harness.userfiles",
    "parse_yaml": "harness.userfiles",
}

__all__ = [
    "__version__",
    "hookimpl",
    "hookspec",
    "BenchError",
    "at",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_RUN_FAILED",
    "Case",
    "DataSpec",
    "TrainSpec",
    "EvalSpec",
    "ModelSpec",
    "RunContext",
    "Task",
    "PluginError",
    "DeviceBackend",
    "ModelRegistry",
    "DeviceRegistry",
    "CaseFormatRegistry",
    "ReportWriterRegistry",
    "LogParserRegistry",
    "ModelInfo",
    "data_group",
    "write_atomic",
    "load_report",
    "cache_dir",
    "ParsedLog",
    "read_log_lines",
    "LOG_NUMBER",
    "Result",
    "Status",
    "RunOutcome",
    "CliResult",
    "read_user_text",
    "read_user_bytes",
    "open_user_text",
    "parse_json",
    "parse_yaml",
]  # = _EXPORTS' names (a test checks)

_moved.install()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from harness.case import Case, DataSpec, EvalSpec, TrainSpec
    from harness.context import ModelSpec, RunContext
    from harness.datacli import data_group
    from harness.devices.base import DeviceBackend
    from harness.errors import (
        EXIT_BAD_INPUT,
        EXIT_OK,
        EXIT_RUN_FAILED,
        BenchError,
        PluginError,
        at,
    )
    from harness.host import cache_dir
    from harness.markers import hookimpl, hookspec
    from harness.registry import (
        CaseFormatRegistry,
        DeviceRegistry,
        LogParserRegistry,
        ModelInfo,
        ModelRegistry,
        ReportWriterRegistry,
    )
    from harness.reports.import_log import LOG_NUMBER, ParsedLog, read_log_lines
    from harness.reports.store import load_report, write_atomic
    from harness.run.result import Result, Status
    from harness.run.session import RunOutcome
    from harness.task import Task
    from harness.testing import CliResult
    from harness.userfiles import (
        open_user_text,
        parse_json,
        parse_yaml,
        read_user_bytes,
        read_user_text,
    )

"""A pytest plugin for plugin authors: run a case in-process with a throwaway plugin.

Installed with zoobench (entry point ``pytest11``), so in any test::

    def test_my_model(bench_run):
        outcome = bench_run({"model": "mine", "train": {"steps": 20}}, plugins=[my_plugin])
        assert outcome.report["status"] == "ok"

``bench_cli(*args)`` runs the ``bench`` command in-process and returns its exit code and
output. Nothing here imports TensorFlow until a case actually runs.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import pytest
import yaml


def pytest_configure(config: pytest.Config) -> None:
    # Logical CPU devices can only be set before TensorFlow initialises; in-process tests
    # share one TF runtime, so give it room for multi-device cases up front.
    from harness.tfcompat import LOGICAL_DEVICES_ENV

    os.environ.setdefault(LOGICAL_DEVICES_ENV, "4")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def write_case(folder: str | os.PathLike, case: dict[str, Any], name: str = "case.yaml") -> str:
    """Write ``case`` as YAML into ``folder`` and return the path."""
    path = os.path.join(os.fspath(folder), name)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(case, fh, sort_keys=False)
    return path


def run_in_process(case: dict[str, Any] | str, out: str, plugins: list[object] = (),
                   overrides: list[str] = (), resume: str | None = None,
                   input_only: bool = False) -> Any:
    """Validate and run one case through the same path as ``bench run`` (``resume`` and
    ``input_only`` as its ``--resume`` and ``--input-only``); returns a RunOutcome
    (``.report``, ``.folder``, ``.exit_code``). Bad input raises BenchError."""
    from harness.run.plan import load
    from harness.run.progress import PlainProgress
    from harness.run.session import execute

    path = case if isinstance(case, str) else write_case(out, case, "case.yaml")
    loaded, cases = load([path], list(overrides), plugin_objects=list(plugins))
    if len(cases) != 1:
        raise ValueError(f"{path}: expected one case, got {len(cases)}")
    return execute(cases[0], loaded, os.path.join(out, "reports"), PlainProgress(),
                   resume=resume, input_only=input_only)


def run_cli(*args: str) -> CliResult:
    """Run ``bench ARGS`` in this process; SystemExit becomes the exit code."""
    from harness import cli

    cli._state.clear()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli.main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    cli._state.clear()
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def bench_run(tmp_path: Any) -> Any:
    """``bench_run(case_dict_or_path, plugins=[...], overrides=[...], resume=None,
    input_only=False)`` -> RunOutcome."""

    def _run(case: dict[str, Any] | str, plugins: list[object] = (),
             overrides: list[str] = (), resume: str | None = None,
             input_only: bool = False) -> Any:
        return run_in_process(case, str(tmp_path), plugins, overrides, resume, input_only)

    return _run


@pytest.fixture
def bench_cli() -> Any:
    """``bench_cli("run", "case.yaml", ...)`` -> CliResult(exit_code, stdout, stderr)."""
    return run_cli

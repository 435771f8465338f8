"""``bench import-log``: the logs of a legacy training run (the Ascend ModelZoo's, TF 1.15 era)
-> a zoobench report, so old runs compare with new ones.

What a model's log says is read by that model's plugin (``register_log_parsers``); here the
parsed intervals become a report as a measured run's would. As the ModelZoo perf scripts do,
the first ``skip`` (2) throughput lines are warmup and dropped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.errors import BenchError
from harness.reports.store import SCHEMA, argv_string, new_run_folder, now_iso
from harness.run.result import Result, Status
from harness.run.throughput import Interval
from harness.userfiles import open_user_text
from harness.version import __version__

# a number as the ModelZoo scripts print it, nan and inf included (for the parsers' regexes)
LOG_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"


@dataclass
class ParsedLog:
    """What a log says: per-interval ``rates`` as (end step, steps, rate), the loss curve
    ``[[step, loss], ...]``, the evaluations ``[{step, elapsed_s, metric...}]``.

    ``rate_unit`` says what a rate counts: ``"samples"`` (global samples/s, as ResNeXt's FPS)
    or ``"steps"`` (global steps/s, as the Estimator's global_step/sec: x global batch).
    """

    rates: list[tuple[int, int, float]] = field(default_factory=list)
    loss_curve: list[list[float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    rate_unit: str = "samples"
    rate_name: str = "throughput"  # what the log calls a rate line, for error messages
    metrics: tuple[str, ...] | None = None  # the eval keys that are accuracy (None: all)


def read_log_lines(paths: list[str]) -> list[tuple[str, int, str]]:
    """``(path, line number, text)`` of every line of ``paths``; an unreadable file is bad
    input (one line naming it)."""
    lines = []
    for path in paths:
        with open_user_text(path, "log file", errors="replace") as fh:
            try:
                lines += [(path, i + 1, line.rstrip("\r\n")) for i, line in enumerate(fh)]
            except OSError as exc:
                raise BenchError(f"{path}: cannot read: {exc.strerror}") from None
    return lines


def build_report(paths: list[str], parse: Callable[[list[str]], ParsedLog], model: str,
                 cann_version: str, devices: int, batch_size: int, name: str | None = None,
                 tensorflow: str | None = None, device: str = "npu", precision: str = "mixed",
                 data_source: str = "tfrecord", skip: int = 2) -> dict[str, Any]:
    """The zoobench report of the run that ``paths`` logged, read by ``parse``."""
    for option, value in (("--devices", devices), ("--batch-size", batch_size)):
        if value < 1:
            raise BenchError(f"{option}: must be >= 1, got {value}")
    if skip < 0:
        raise BenchError(f"--skip: must be >= 0, got {skip}")
    parsed = parse(list(paths))
    where = ", ".join(paths)
    if len(parsed.rates) <= skip:
        raise BenchError(f"{where}: found {len(parsed.rates)} {parsed.rate_name} line(s); need "
                         f"more than the {skip} dropped as warmup (--skip)")
    global_batch = batch_size * devices
    intervals = []
    for step, steps, rate in parsed.rates[skip:]:
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise BenchError(f"{where}: {parsed.rate_name} at step {step}: expected a finite "
                             f"rate > 0, got {rate}; a log with such a line measures nothing")
        if steps < 1:
            raise BenchError(f"{where}: {parsed.rate_name} at step {step}: covers {steps} steps")
        samples_per_sec = rate if parsed.rate_unit == "samples" else rate * global_batch
        samples = steps * global_batch
        intervals.append(Interval(step, steps, samples, samples / samples_per_sec))
    warmup = parsed.rates[skip - 1][0] if skip else 0
    curve = parsed.loss_curve
    bad = next((p for p in curve if not math.isfinite(p[1])), None)
    last_eval = parsed.evals[-1] if parsed.evals else {}
    result = Result(
        devices=devices, global_batch_size=global_batch, data_source=data_source,
        warmup_steps=warmup,
        loss={"first": curve[0][1] if curve else None,
              "last": bad[1] if bad else (curve[-1][1] if curve else None),
              "curve": [p for p in curve if math.isfinite(p[1])]},
        accuracy={k: v for k, v in last_eval.items() if k not in ("step", "elapsed_s")
                  and (parsed.metrics is None or k in parsed.metrics)},
        evals=parsed.evals,
        status=Status.DIVERGED if bad else Status.OK,
        error=f"loss is {bad[1]} at step {bad[0]}" if bad else None,
    )
    result.set_intervals(intervals)
    last_step = parsed.rates[-1][0]
    case = {
        "name": name or f"{model}_{devices}p", "model": model, "device": device,
        "devices": [devices], "precision": precision, "batch_size": batch_size,
        "data": {"source": data_source, "path": None, "eval_path": None},
        "train": {"steps": last_step, "epochs": None, "warmup_steps": warmup,
                  "log_every": parsed.rates[-1][1]},
        "eval": {"at_end": bool(parsed.evals), "every_steps": None, "steps": None, "target": {}},
        "params": {}, "npu": {}, "launcher": "inline", "plugins": [], "seed": 0,
        "timeout": None, "description": f"imported from a ModelZoo {model} log",
        "source": where,
    }
    environment = {
        "python": None, "tensorflow": tensorflow, "keras": None, "harness": __version__,
        "plugins": {}, "device": {"type": device, "name": None, "count": devices},
        "cann_version": cann_version, "driver_version": None, "tfplugin_version": None,
        "host": None, "os": None, "cpu": None, "cpu_count": None, "git": None,
    }
    return {
        "schema": SCHEMA, "run_id": None, "status": result.status.value, "started_at": None,
        "finished_at": None, "imported_at": now_iso(), "command": argv_string(),
        "imported_from": [os.path.abspath(p) for p in paths], "case": case,
        "device_options": {"precision": precision}, "environment": environment,
        "results": [result.to_dict()],
    }


def import_logs(paths: list[str], out: str, plugins: Any, model: str,
                **options: Any) -> tuple[dict, str]:
    """Parse with ``model``'s registered log parser, then write the report folder
    (report.json and every renderer's file)."""
    from harness.reports.store import write_report

    if model not in plugins.log_parsers:
        from harness.registry import unknown

        raise BenchError(f"--model: {unknown('log format', model, plugins.log_parsers.names())}")
    report = build_report(list(paths), plugins.log_parsers.get(model), model, **options)
    run_id, folder = new_run_folder(out, report["case"]["name"])
    report["run_id"] = run_id
    write_report(folder, report, plugins)
    return report, folder

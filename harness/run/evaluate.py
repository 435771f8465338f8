"""``bench evaluate RUN_FOLDER [CASE]``: every checkpoint of a run evaluated into a report.

One row per checkpoint, as the seed's ``--mode evaluate --ckpt_dir`` table: step, epoch, the
metrics, and when the checkpoint was written. Each checkpoint is loaded into a freshly built
model (one device, the case's device type) and evaluated by the model's ``evaluate`` hook on
its eval split. Time-to-accuracy is the training time (``elapsed_s`` of the checkpoint, from
the start of the trained count) of the first row that meets every ``eval.target``.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import TYPE_CHECKING, Any

from harness.case import RawCase, apply_overrides, parse_override, target_met, validate
from harness.errors import BenchError
from harness.reports.environment import capture_environment
from harness.reports.store import SCHEMA, argv_string, load_report, new_run_folder, now_iso
from harness.run import checkpoints
from harness.run.plan import device_options, load_cases, resolve_device
from harness.run.result import Status, worst_status
from harness.run.runner import Job, Runner, new_result
from harness.run.session import RunOutcome, _jsonable, file_logger, finish_report

if TYPE_CHECKING:
    from harness.case import Case
    from harness.plugins import BenchPlugins
    from harness.run.progress import PlainProgress

KIND = "evaluate"


def evaluated_case(run_folder: str, report: dict[str, Any], case_file: str | None,
                   overrides: list[str], plugins: BenchPlugins) -> Case:
    """The case to evaluate with: ``case_file``'s (the one named as the run's case, or its
    only one), else the run's own resolved case from its report.json."""
    name = report["case"]["name"]
    if case_file:
        cases = load_cases([case_file], list(overrides), plugins)
        named = [c for c in cases if c.name == name]
        if named:
            return named[0]
        if len(cases) == 1:
            return cases[0]
        raise BenchError(f"{case_file}: no case named {name!r} (the evaluated run's case)")
    data = {k: v for k, v in report["case"].items() if k != "source"}
    raw = RawCase(os.path.join(run_folder, "report.json"), "case", data)
    apply_overrides(raw, [parse_override(text) for text in overrides])
    for module_path in raw.plugin_modules():
        plugins.load_module(module_path, source="case file")
    return validate(raw, plugins.models, plugins.devices)


def evaluate_run(run_folder: str, case_file: str | None, plugins: BenchPlugins, out_root: str,
                 progress: PlainProgress, overrides: list[str] = ()) -> RunOutcome:
    """Evaluate every checkpoint of ``run_folder``; bad input raises before anything is
    written, a failure afterwards is the report's status."""
    run_folder = os.path.abspath(run_folder)
    old = load_report(run_folder)
    counts = checkpoints.saved_counts(run_folder)
    if not counts:
        raise BenchError(f"{run_folder}: no checkpoints (checkpoints/devices_N/index.json; "
                         f"saved with train.checkpoint_every)")
    case = evaluated_case(run_folder, old, case_file, list(overrides), plugins)
    device_name = resolve_device(case, plugins)
    backend_cls = plugins.devices.get(device_name)
    if not backend_cls.available():
        raise BenchError(f"{case.source}: device: {device_name!r} is not available on this "
                         f"machine ({backend_cls.unavailable_reason() or 'see bench list'})")
    model_hooks = plugins.model_hooks(case)
    model_hooks.validate()  # the model's own input checks: still bad input
    backend = backend_cls()
    options = device_options(case, plugins, model_hooks)
    backend.prepare(case, 1, options)

    run_id, folder = new_run_folder(out_root, case.name)
    report: dict[str, Any] = {
        "schema": SCHEMA, "kind": KIND, "run_id": run_id, "status": "failed",
        "started_at": now_iso(), "finished_at": None, "command": argv_string(),
        "evaluated": {"run_folder": run_folder, "run_id": old.get("run_id")},
        "case": case.to_dict(), "device_options": _jsonable(options), "environment": {},
        "results": [],
    }
    results = []
    with open(os.path.join(folder, "evaluate.log"), "a", encoding="utf-8") as log_file:
        job = Job(case, plugins, backend, options, progress, file_logger(log_file, progress),
                  model_hooks=model_hooks, folder=folder)
        try:
            report["environment"] = capture_environment(
                plugins, device={**backend.describe(), "type": device_name, "count": 1})
            for count in counts:
                results.append(_evaluate_count(job, run_folder, count))
            report["status"] = worst_status([r.status for r in results]).value
        except KeyboardInterrupt:
            report["status"] = "interrupted"
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            report["status"], report["error"] = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            finish_report(folder, report, results, plugins, log_file, model_hooks.served)
    return RunOutcome(case, report, folder)


def _evaluate_count(job: Job, run_folder: str, count: int) -> Any:
    """One result: the rows of the checkpoints the run saved at ``count`` devices."""
    case = job.case
    result = new_result(case, count)
    result.checkpoint_evals = []
    began = time.perf_counter()
    entries = checkpoints.read_index(checkpoints.count_folder(run_folder, count))
    try:
        for entry in entries:
            metrics = _evaluate_checkpoint(job, checkpoints.count_folder(run_folder, count), entry)
            row = {"step": entry["step"], "epoch": entry.get("epoch"), **metrics,
                   "checkpoint_time": entry.get("saved_at"), "elapsed_s": entry.get("elapsed_s"),
                   "checkpoint": entry["path"]}
            result.checkpoint_evals.append(row)
            result.accuracy = metrics
            job.log(f"checkpoint {entry['path']} (step {entry['step']}): "
                    + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            if case.eval.target and metrics:
                met = target_met(case.eval.target, metrics)
                if met and result.time_to_accuracy_s is None:
                    result.time_to_accuracy_s = entry.get("elapsed_s")
                result.target_met = bool(met or result.time_to_accuracy_s is not None)
        result.status = Status.OK
    except KeyboardInterrupt:
        result.status, result.error = Status.INTERRUPTED, "interrupted by signal"
    except BenchError as exc:
        result.status, result.error = Status.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - the report still says what happened
        result.status, result.error = Status.FAILED, f"{type(exc).__name__}: {exc}".strip()
        result.traceback = traceback.format_exc()
    result.wall_time_s = time.perf_counter() - began
    return result


def _evaluate_checkpoint(job: Job, folder: str, entry: dict[str, Any]) -> dict[str, float]:
    runner = Runner(job)
    ctx = runner.prepare(1)
    ctx.train_steps = int(entry.get("total_steps") or entry["step"])
    if entry.get("epoch"):
        ctx.steps_per_epoch = max(1, round(entry["step"] / entry["epoch"]))
    with ctx.strategy.scope():
        spec = job.model_hooks.build_model(ctx)
        if spec is None:
            raise BenchError(f"no plugin built model {job.case.model!r}")
    ctx.model_spec = spec
    checkpoints.restore_model(spec.model, os.path.join(folder, entry["path"]))
    metrics = runner.eval_metrics(ctx, spec)
    if not metrics:
        raise BenchError(f"no plugin evaluated model {job.case.model!r} (no eval dataset or "
                         f"evaluate hook)")
    return metrics

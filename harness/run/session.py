"""One case of ``bench run``: check the device, make the run folder, measure each device count
with the launcher that count needs, and always leave a report with its status."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, BenchError
from harness.reports.environment import capture_environment
from harness.reports.store import SCHEMA, argv_string, new_run_folder, now_iso, write_report
from harness.run.engine import EAGER, check_graph_engine, engine_kind
from harness.run.events import RunEvents
from harness.run.launch import DEFAULT_TIMEOUT_S, GRACE_S, InlineLauncher, ProcessLauncher
from harness.run.plan import (
    INLINE,
    PROCESS,
    Hosts,
    check_npu_placement,
    device_options,
    launcher_for,
    resolve_device,
    resolve_steps_per_loop,
)
from harness.run.result import (
    STOPS_RUN,
    Result,
    Status,
    add_scaling_efficiency,
    agreed_rank_options,
    worst_status,
)
from harness.run.runner import Job
from harness.run.watchdog import Watchdog

# The runner and the launchers check the timeout themselves; the watchdog steps in after
# they had time to stop (the process launcher gives its workers GRACE_S after SIGTERM).
DEADLINE_SLACK_S = GRACE_S + 2.0

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

    from harness.case import Case
    from harness.plugins import BenchPlugins
    from harness.run.progress import PlainProgress


@dataclass
class RunOutcome:
    """What ``bench run`` did with one case: the report as written and its folder."""

    case: Case
    report: dict[str, Any]
    folder: str

    @property
    def exit_code(self) -> int:
        """0 ok; 2 when a plugin broke the contract (bad input, found during the run: the
        report says which plugin); else 3 for a run that did not finish ok."""
        if any(r.get("faulty_plugin") for r in self.report.get("results", [])):
            return EXIT_BAD_INPUT
        return EXIT_OK if self.report["status"] == "ok" else EXIT_RUN_FAILED


@dataclass(frozen=True)
class Where:
    """Where the run's device counts go: ``--hosts``, ``--rank-table``, ``--port-base``."""

    hosts: Hosts | None = None
    rank_table: str | None = None
    port_base: int = 29500


def execute(case: Case, plugins: BenchPlugins, out_root: str, progress: PlainProgress,
            hosts: Hosts | None = None, rank_table: str | None = None,
            port_base: int = 29500, resume: str | None = None,
            input_only: bool = False) -> RunOutcome:
    """Prepare the device (errors here are bad input: nothing written), then run every
    device count and write the report, whatever happens. ``resume``: a run folder whose
    last checkpoint of each count the training continues from; ``input_only``: time the
    train input pipeline alone."""
    where = Where(hosts, rank_table, port_base)
    if resume is not None:
        resume = check_resume(case, resume, input_only)
    device_name = resolve_device(case, plugins)
    backend_cls = plugins.devices.get(device_name)
    case = resolve_steps_per_loop(case, backend_cls)
    launchers = {n: launcher_for(case, device_name, n, hosts) for n in case.devices}
    inline = [n for n, how in launchers.items() if how == INLINE]
    if inline and not backend_cls.available():
        reason = backend_cls.unavailable_reason() or "see bench list"
        raise BenchError(f"{case.source}: device: {device_name!r} is not available on this "
                         f"machine ({reason})")
    if hosts is not None:
        hosts.local_ranks(max(case.devices))  # checks the split before anything is written
    if device_name == "npu":
        check_npu_placement(case, [n for n, how in launchers.items() if how == PROCESS],
                            rank_table)
    model_hooks = plugins.model_hooks(case)  # the run's task: its state lives as long as the run
    model_hooks.validate()  # the model's own input checks: still bad input
    if case.engine == EAGER:
        engine_kind(case, backend_cls)  # eager where it cannot run is bad input too
    wants_eager = (case.train.checkpoint_every or case.data.probe_steps or case.profile.enabled
                   or resume or input_only)
    if wants_eager:  # features of the eager engine (asking for the engine imports TF)
        check_graph_engine(case, backend_cls, resume, input_only)
    backend = backend_cls()
    options = device_options(case, plugins, model_hooks)
    if inline:
        # Worker processes prepare their own device; the parent only for inline counts.
        backend.prepare(case, max(inline), options)

    run_id, folder = new_run_folder(out_root, case.name)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": run_id,
        "status": "failed",
        "started_at": now_iso(),
        "finished_at": None,
        "command": argv_string(),
        "case": case.to_dict(),
        "device_options": _jsonable(options),
        "environment": {},
        "results": [],
    }
    if input_only:
        report["input_only"] = True
    if resume is not None:
        report["resumed_from"] = resume
    results: list[Result] = []
    with _train_log(folder) as log_file:
        log = file_logger(log_file, progress)
        job = Job(case, plugins, backend, options, progress, log, events=RunEvents(log=log),
                  model_hooks=model_hooks, folder=os.path.abspath(folder), resume=resume,
                  input_only=input_only)

        def finish() -> None:
            progress.stop()
            job.events.close(report["status"])
            finish_report(folder, report, results, plugins, log_file, model_hooks.served)

        def save() -> None:  # what the watchdog writes from if this process gets stuck
            dog.save({**report, "results": [r.to_dict() for r in results]})

        limit = case.timeout or DEFAULT_TIMEOUT_S
        left = limit - (time.monotonic() - job.started) + DEADLINE_SLACK_S
        with Watchdog(folder, left, limit, plugins) as dog:
            try:
                save()
                job.events = RunEvents.open(plugins, case, folder, log)
                job.events.sinks.append(dog.sink)
                device = {**backend.describe(), "type": device_name, "count": max(case.devices)}
                report["environment"] = capture_environment(plugins, device=device)
                save()
                for count in case.devices:
                    result = _launcher(job, launchers[count], device_name, folder, out_root,
                                       where).measure(count)
                    results.append(result)
                    _stopped_by(dog, result)
                    save()
                    job.events.emit("run_stop", result=result.to_dict())
                    if result.status in STOPS_RUN:
                        break
                    if _repeats(result):
                        rest = list(case.devices)[case.devices.index(count) + 1:]
                        if rest:
                            report["skipped_devices"] = rest
                            log(f"devices {', '.join(map(str, rest))} not run: the "
                                f"{result.failed_in or 'plugin'} failure at {count} would repeat")
                        break
                add_scaling_efficiency(results)
                report["device_options"].update(_jsonable(agreed_rank_options(results)))
                report["status"] = worst_status([r.status for r in results]).value
                if dog.message and report["status"] in ("timeout", "interrupted"):
                    report["error"] = dog.message
            except KeyboardInterrupt:
                report["status"] = "timeout" if dog.reason == "timeout" else "interrupted"
                if dog.message:
                    report["error"] = dog.message
            except Exception as exc:  # noqa: BLE001 - the report must still be written
                report["status"] = "failed"
                report["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                dog.write_once(finish)
    return RunOutcome(case, report, folder)


def file_logger(log_file: Any, progress: PlainProgress) -> Callable[[str], None]:
    """A log function: timestamped lines into the run's log file, and to the console."""

    def log(line: str) -> None:
        try:
            log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            log_file.flush()
        except (OSError, ValueError):
            pass  # a full disk must not end the run; the report says what it can
        progress.print(line)

    return log


def finish_report(folder: str, report: dict[str, Any], results: list[Result],
                  plugins: BenchPlugins, log_file: Any, served: dict[str, Any]) -> None:
    """The results into the report (with the plugins that answered the model hooks:
    ``served``, the parent's, and the workers'), the report written, the tracebacks into
    the log."""
    report["results"] = [r.to_dict() for r in results]
    served = dict(served)
    for result in results:
        for hook, plugin in (result.served_by or {}).items():
            served.setdefault(hook, plugin)
    report["model_hooks"] = plugins.served_by(served)
    report["finished_at"] = now_iso()
    write_report(folder, report, plugins)
    for result in results:
        if result.traceback:
            try:
                log_file.write(result.traceback)
            except (OSError, ValueError):
                pass


def check_resume(case: Case, folder: str, input_only: bool) -> str:
    """``--resume RUN_FOLDER``: a run of the same model and batch with a checkpoint of every
    device count of ``case`` (bad input otherwise, before anything is written)."""
    from harness.reports.store import load_report
    from harness.run.checkpoints import resume_point

    if input_only:
        raise BenchError("--resume: an --input-only run trains nothing to resume")
    if case.repeat > 1:
        raise BenchError(f"{case.source}: repeat: a resumed run is one measurement; "
                         f"use repeat: 1 with --resume")
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise BenchError(f"--resume {folder}: no such run folder")
    old = load_report(folder)["case"]
    for key in ("model", "batch_size"):
        if old.get(key) != getattr(case, key):
            raise BenchError(f"--resume {folder}: {key} {old.get(key)!r} there, "
                             f"{getattr(case, key)!r} in {case.source}")
    for count in case.devices:
        resume_point(folder, count, case.train.steps)
    return folder


def _repeats(result: Result) -> bool:
    """Whether the failure of one count would repeat at the others: a plugin that broke the
    contract, or a failure while building the data or model, or evaluating (the same code
    for every count); training failures (a dying worker, memory) may depend on the count."""
    return result.status is Status.FAILED and (
        bool(result.faulty_plugin) or result.failed_in in ("build", "eval"))


@contextlib.contextmanager
def _train_log(folder: str) -> Iterator[TextIO]:
    """train.log, whose close never raises: on a full disk the report's own error counts."""
    fh = open(os.path.join(folder, "train.log"), "a", encoding="utf-8")
    try:
        yield fh
    finally:
        try:
            fh.close()
        except OSError:
            pass


def _stopped_by(dog: Watchdog, result: Result) -> None:
    """A count the watchdog stopped ends as ``interrupted`` (its stop is a KeyboardInterrupt,
    whether from a signal or from the guard's SIGUSR1 at the deadline): say which, and at the
    deadline it is a timeout."""
    if dog.reason is None or result.status is not Status.INTERRUPTED:
        return
    result.error = dog.message
    if dog.reason == "timeout":
        result.status = Status.TIMEOUT


def _launcher(job: Job, how: str, device: str, folder: str, out_root: str, where: Where) -> Any:
    if how == INLINE:
        return InlineLauncher(job)
    if how == PROCESS:
        return ProcessLauncher(job, device, folder, where.hosts, where.rank_table)
    from harness.run.slurm import SlurmLauncher

    return SlurmLauncher(job, device, out_root, where.port_base)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

"""One ``bench run``: plugins and cases in, a report folder per case out."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.case import load_cases
from harness.errors import EXIT_OK, EXIT_RUN_FAILED, BenchError
from harness.events import RunEvents
from harness.launch import Hosts, ProcessLauncher, SlurmLauncher, slurm_tasks, uses_processes
from harness.plugins import BenchPlugins, load_plugins
from harness.report import (
    SCHEMA,
    argv_string,
    capture_environment,
    new_run_folder,
    now_iso,
    overall_status,
    write_report,
)
from harness.runner import Runner, device_options, resolve_device

if TYPE_CHECKING:
    from harness.case import Case
    from harness.progress import PlainProgress


@dataclass
class RunOutcome:
    case: Case
    report: dict[str, Any]
    folder: str

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.report["status"] == "ok" else EXIT_RUN_FAILED


def plan(paths: list[str], overrides: list[str], plugin_modules: list[str] = (),
         plugin_objects: list[object] = (), plugins: BenchPlugins | None = None,
         ) -> tuple[BenchPlugins, list[Case]]:
    """Load plugins and validate every case; raises BenchError before anything is written."""
    if plugins is None:
        plugins = load_plugins(plugin_modules, plugin_objects)
    else:
        for module_path in plugin_modules:
            plugins.load_module(module_path)
        for obj in plugin_objects:
            plugins.add(obj, getattr(obj, "__name__", type(obj).__name__),
                        getattr(obj, "__version__", "unversioned"), "object")
    cases = load_cases(list(paths), list(overrides), plugins)
    return plugins, cases


def execute(case: Case, plugins: BenchPlugins, out_root: str, progress: PlainProgress,
            hosts: Hosts | None = None, rank_table: str | None = None,
            port_base: int = 29500) -> RunOutcome:
    """Prepare the device (errors here are bad input: nothing written), then run and always
    leave a report with its status."""
    device_name = resolve_device(case, plugins)
    backend_cls = plugins.devices.get(device_name)
    inline = [n for n in case.devices if not uses_processes(case, device_name, n, hosts)]
    if inline and not backend_cls.available():
        reason = backend_cls.unavailable_reason() or "see bench list"
        raise BenchError(f"{case.source}: device: {device_name!r} is not available on this "
                         f"machine ({reason})")
    if hosts is not None:
        hosts.local_ranks(max(case.devices))  # checks the split before anything is written
    plugins.hook.validate_case(case=case)  # the model's own input checks: still bad input
    backend = backend_cls()
    options = device_options(case, plugins)
    if inline:
        # Worker processes prepare their own device; the parent only for inline counts.
        backend.prepare(case, max(inline), options)

    run_id, folder = new_run_folder(out_root, case.name)
    started = now_iso()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": run_id,
        "status": "failed",
        "started_at": started,
        "finished_at": None,
        "command": argv_string(),
        "case": case.to_dict(),
        "device_options": _jsonable(options),
        "environment": {},
        "results": [],
    }
    log_path = os.path.join(folder, "train.log")
    with open(log_path, "a", encoding="utf-8") as log_file:

        def log(line: str) -> None:
            log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            log_file.flush()
            progress.print(line)

        events = RunEvents(log=log)
        try:
            events = RunEvents.open(plugins, case, folder, log)
            device = {**backend.describe(), "type": device_name, "count": max(case.devices)}
            report["environment"] = capture_environment(plugins, device=device)
            if slurm_tasks() > 1 and case.launcher != "inline":
                launch = SlurmLauncher(case, plugins, device_name, folder, progress, log,
                                       out_root=out_root, port_base=port_base)
            else:
                launch = ProcessLauncher(case, plugins, device_name, folder, progress, log,
                                         hosts, rank_table)
            report["results"] = Runner(case, plugins, backend, options, progress, log,
                                       launch=launch, events=events).run()
            report["status"] = overall_status(report["results"])
        except KeyboardInterrupt:
            report["status"] = "interrupted"
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            report["status"] = "failed"
            report["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            progress.stop()
            events.close(report["status"])
            report["finished_at"] = now_iso()
            write_report(folder, report, plugins)
            for result in report["results"]:
                if result.get("traceback"):
                    log_file.write(result["traceback"])
    return RunOutcome(case, report, folder)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

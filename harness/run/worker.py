"""The per-count worker function every launcher runs, and the worker process entry point
``python -m harness.run.worker SPEC.json`` (one process per device of a process launch)."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError
from harness.plugins import load_plugins
from harness.reports.store import to_json, write_atomic
from harness.run import plan
from harness.run.events import JsonlEventSink, RunEvents
from harness.run.progress import PlainProgress
from harness.run.runner import Job, Runner, WorkerInfo

if TYPE_CHECKING:
    from harness.run.result import Result


def measure_count(job: Job, count: int) -> Result:
    """Measure ``count`` devices of ``job`` in this process: the one per-count worker
    function (inline, each worker process and each Slurm task run exactly this)."""
    return Runner(job).measure(count)


@dataclass(frozen=True)
class WorkerSpec:
    """What the parent tells one worker process (a JSON file beside its log)."""

    case_file: str
    plugin_modules: list[str]
    device: str
    rank: int
    world_size: int
    result: str  # where the worker writes its result (JSON)
    events: str  # where it streams its events (JSON lines)
    disabled_plugins: tuple[str, ...] = ()  # the parent's -p no:NAME

    @classmethod
    def in_folder(cls, folder: str, rank: int, world_size: int, case_file: str,
                  plugin_modules: list[str], device: str,
                  disabled_plugins: tuple[str, ...] = ()) -> WorkerSpec:
        return cls(case_file, list(plugin_modules), device, rank, world_size,
                   os.path.join(folder, f"rank{rank}.result.json"),
                   os.path.join(folder, f"rank{rank}.events.jsonl"), tuple(disabled_plugins))

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh)

    @classmethod
    def read(cls, path: str) -> WorkerSpec:
        with open(path, encoding="utf-8") as fh:
            return cls(**json.load(fh))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.read(argv[0])
    signal.signal(signal.SIGTERM, _interrupt)
    progress = PlainProgress()  # stdout is this rank's log file
    try:
        plugins, cases = plan.load([spec.case_file], [], spec.plugin_modules,
                                   plugins=load_plugins(disabled=spec.disabled_plugins))
        case = cases[0]
        backend = plugins.devices.get(spec.device)()
        model_hooks = plugins.model_hooks(case)
        options = plan.device_options(case, plugins, model_hooks)
        before = dict(options)
        backend.prepare(case, 1, options)
    except BenchError as exc:
        print(f"bench worker: error: {exc}", flush=True)
        return 2
    job = Job(case, plugins, backend, options, progress, progress.print,
              events=RunEvents([JsonlEventSink(spec.events)], progress.print),
              worker=WorkerInfo(rank=spec.rank, world_size=spec.world_size),
              model_hooks=model_hooks)
    result = measure_count(job, spec.world_size)
    result.rank, result.pid = spec.rank, os.getpid()
    result.device_options = {key: value for key, value in options.items()
                             if key not in before or before[key] != value}
    write_atomic(spec.result, to_json(result.to_dict(), indent=None))
    if result.traceback:
        print(result.traceback, flush=True)
    return 0 if result.status == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())

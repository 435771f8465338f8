"""A worker process of the process launcher: ``python -m harness.worker SPEC.json``."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from harness.progress import PlainProgress


class EventsProgress(PlainProgress):
    """Plain log lines on stdout (the rank's log file) plus one JSON line per interval, so the
    parent can report what was measured even if this worker dies."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def update(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": "interval", "time_unix": time.time(), **record}) + "\n")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from harness.errors import BenchError
    from harness.events import RunEvents
    from harness.report import write_atomic
    from harness.runner import Runner, WorkerInfo, device_options
    from harness.session import plan

    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plugins, cases = plan([spec["case_file"]], [], spec["plugin_modules"])
        case = cases[0]
        backend = plugins.devices.get(spec["device"])()
        options = device_options(case, plugins)
        backend.prepare(case, 1, options)
    except BenchError as exc:
        print(f"bench worker: error: {exc}", flush=True)
        return 2
    progress = EventsProgress(spec["events"])
    worker = WorkerInfo(rank=spec["rank"], world_size=spec["world_size"])
    # Rank 0 writes the MLLOG / TensorBoard events of the run beside its log (one writer).
    events = (RunEvents.open(plugins, case, os.path.dirname(spec["result"]), progress.print)
              if spec["rank"] == 0 else RunEvents())
    runner = Runner(case, plugins, backend, options, progress, progress.print, worker=worker,
                    events=events)
    result = runner.measure(spec["world_size"])
    events.close(result["status"])
    result["rank"] = spec["rank"]
    result["pid"] = os.getpid()
    write_atomic(spec["result"], json.dumps(result, default=str))
    if result.get("traceback"):
        print(result["traceback"], flush=True)
    return 0 if result["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())

"""The watchdog's guard process (see :mod:`harness.run.watchdog`):
``python -m harness.run.guard PID FOLDER SIGNAL_FD DONE_FD SECONDS TIMEOUT GRACE MODULES``.

It reads the signals ``bench`` (PID) caught from SIGNAL_FD (the read end of its
``set_wakeup_fd`` pipe) and the session's progress from DONE_FD (``W``: writing the
report, ``D``: done; EOF: bench is finished). On the first SIGINT/SIGTERM, or SECONDS from
now (then it sends bench SIGUSR1), bench gets GRACE seconds to write its report; after
that the guard writes it from FOLDER/.watchdog.json and the running count's event stream,
then ends bench with SIGQUIT (exit status 3). Only the standard library is imported until
a report has to be written.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sys
import time
from typing import Any

WRITE_GRACE_S = 60.0  # how long bench's own report write may take before the guard acts
SIGNALS = (int(signal.SIGINT), int(signal.SIGTERM))


def _alive(pid: int) -> bool:
    return os.getppid() == pid


def _read(fd: int) -> bytes | None:
    """Bytes waiting on ``fd`` (b"" at EOF), None when nothing is there."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _running_result(case: dict[str, Any], finished: int, events: list[dict[str, Any]],
                    status: str, error: str) -> dict[str, Any] | None:
    """The count that was running (its run_start has no finished result yet), from its
    streamed intervals; None when no count was running."""
    from harness.run.result import Result
    from harness.run.throughput import Interval

    starts = [i for i, e in enumerate(events) if e.get("kind") == "run_start"]
    if len(starts) <= finished:
        return None
    mine = events[starts[-1]:]
    count = int(mine[0]["ctx"]["devices"])
    result = Result(devices=count, global_batch_size=int(case["batch_size"]) * count,
                    data_source=case["data"]["source"],
                    warmup_steps=int(case["train"]["warmup_steps"]))
    intervals = [e["interval"] for e in mine if e.get("kind") == "interval"]
    records = [e["record"] for e in mine if e.get("kind") == "interval"]
    result.set_intervals([Interval(i["step"], i["steps"], i["samples"], i["seconds"])
                          for i in intervals])
    curve = [[r.get("step"), r.get("mean_loss")] for r in records]
    result.loss = {"first": curve[0][1] if curve else None,
                   "last": curve[-1][1] if curve else None, "curve": curve}
    evals = [{"step": e["step"], **e["metrics"]} for e in mine if e.get("kind") == "evaluate"]
    result.evals = evals
    if evals:
        result.accuracy = {k: v for k, v in evals[-1].items() if k != "step"}
    result.status, result.error = status, error
    return result.to_dict()


def write_known(folder: str, modules: list[str], status: str, error: str) -> str:
    """The report from the session's saved state and the running count's events."""
    from harness.plugins import load_plugins
    from harness.reports.store import now_iso, write_report
    from harness.run.events import read_event_lines
    from harness.run.result import worst_status
    from harness.run.watchdog import EVENTS, STATE

    with open(os.path.join(folder, STATE), encoding="utf-8") as fh:
        report = json.load(fh)
    results = list(report.get("results") or [])
    running = _running_result(report["case"], len(results),
                              read_event_lines(os.path.join(folder, EVENTS)), status, error)
    if running is not None:
        results.append(running)
    report["results"] = results
    report["status"] = worst_status([r["status"] for r in results] or [status]).value
    if running is None and results and report["status"] == "ok":
        report["status"] = status  # every count had finished; the write itself was stuck
    report["error"] = error
    report["finished_at"] = now_iso()
    plugins = load_plugins(modules)
    write_report(folder, report, plugins)
    return report["status"]


class Guard:
    def __init__(self, pid: int, folder: str, signal_fd: int, done_fd: int, seconds: float,
                 timeout_s: float, grace: float, modules: list[str]) -> None:
        self.pid, self.folder = pid, folder
        self.signal_fd, self.done_fd = signal_fd, done_fd
        self.deadline = time.monotonic() + seconds
        self.timeout_s, self.grace, self.modules = timeout_s, grace, modules
        self.reason: str | None = None
        self.message = ""
        self.stop_by: float | None = None
        self.writing = False
        for fd in (signal_fd, done_fd):
            os.set_blocking(fd, False)

    def log(self, line: str) -> None:
        try:
            with open(os.path.join(self.folder, "train.log"), "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} watchdog: {line}\n")
        except OSError:
            pass
        print(f"watchdog: {line}", flush=True)

    def _session_done(self) -> bool:
        """Reads bench's messages; True once it has written its report (or is gone)."""
        data = _read(self.done_fd)
        if data is None:
            return False
        if data == b"" or b"D" in data:
            return True
        if b"W" in data:
            self.writing = True
            self.stop_by = time.monotonic() + WRITE_GRACE_S
        return False

    def run(self) -> int:
        while True:
            if not _alive(self.pid):
                return 0
            now = time.monotonic()
            until = self.stop_by if self.stop_by is not None else self.deadline
            ready, _, _ = select.select([self.signal_fd, self.done_fd], [], [],
                                        max(0.0, min(1.0, until - now)))
            if self.done_fd in ready and self._session_done():
                return 0
            if self.signal_fd in ready:
                data = _read(self.signal_fd) or b""
                caught = [b for b in data if b in SIGNALS]
                if caught and self.reason is None and not self.writing:
                    self.reason = "interrupted"
                    self.message = f"interrupted by {signal.Signals(caught[0]).name}"
                    self.stop_by = time.monotonic() + self.grace
            now = time.monotonic()
            if self.reason is None and now >= self.deadline and not self.writing:
                self.reason = "timeout"
                self.message = f"run exceeded its {self.timeout_s:g} s timeout"
                self.stop_by = now + self.grace
                self.log(f"{self.message}; stopping the run")
                try:
                    os.kill(self.pid, signal.SIGUSR1)
                except OSError:
                    return 0
            elif self.stop_by is not None and now >= self.stop_by:
                return self.stop()

    def stop(self) -> int:
        """bench did not write its report in time: write it from here, then end bench."""
        from harness.run.watchdog import EXIT_SIGNAL, LOCK

        with open(os.path.join(self.folder, LOCK), "a") as lock:
            waited = time.monotonic() + WRITE_GRACE_S
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # bench is writing its report right now
                    if time.monotonic() > waited:
                        break
                    time.sleep(0.2)
            if self._session_done():
                return 0
            status = "timeout" if self.reason == "timeout" else "interrupted"
            error = (f"{self.message}; bench did not stop within {self.grace:g} s (blocked "
                     f"in native code) and was ended by its watchdog")
            self.log(f"{error}; writing the report")
            try:
                written = write_known(self.folder, self.modules, status, error)
                self.log(f"report: {self.folder}/report.json ({written})")
            except BaseException as exc:  # noqa: BLE001 - nothing else can say it
                self.log(f"could not write the report: {type(exc).__name__}: {exc}")
            for signum in (EXIT_SIGNAL, signal.SIGKILL):
                try:
                    os.kill(self.pid, signum)
                except OSError:
                    return 0
                for _ in range(50):
                    if not _alive(self.pid):
                        return 0
                    time.sleep(0.1)
        return 0


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # bench's signals reach it through the pipe
    pid, folder, signal_fd, done_fd, seconds, timeout_s, grace, modules = argv
    return Guard(int(pid), folder, int(signal_fd), int(done_fd), float(seconds),
                 float(timeout_s), float(grace), json.loads(modules)).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

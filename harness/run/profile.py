"""A TF profiler trace of the steps ``profile.start_step`` .. ``start_step + steps - 1``.

The trace goes to ``profile/devices_<N>/`` in the run folder (``plugins/profile/<run>/
<host>.xplane.pb``, what TensorBoard's profile plugin reads). The window starts and ends at
interval ends (host syncs), and its steps are outside the measured window: the profiler slows
them. On an NPU the adapter's own profiling (``npu.profiling``) covers the whole process; a
backend that says ``trace_profiler = False`` gets no TF trace, only that note.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Callable

FOLDER = "profile"


class ProfileWindow:
    """Starts and stops the TF profiler at the window's edges; :meth:`covers` says which
    intervals lie inside it (the runner leaves those out of the throughput)."""

    def __init__(self, start_step: int, steps: int, total_steps: int, logdir: str,
                 run_folder: str, log: Callable[[str], None] = print) -> None:
        self.start = start_step
        self.end = min(start_step + steps - 1, total_steps)
        self.logdir = logdir
        self.run_folder = run_folder
        self.log = log
        self.active = False
        self.done = False
        self.error: str | None = None
        if self.end < start_step:
            self.done = True
            self.error = f"profile.start_step {start_step} is after the last step ({total_steps})"

    def boundary(self, step: int) -> bool:
        """The interval must end at ``step`` (a host sync) for the window to start or end."""
        return not self.done and step in (self.start - 1, self.end)

    def next_boundary(self, step: int) -> int | None:
        """The first window edge after ``step`` (a loop must end there), None when done."""
        edges = [edge for edge in (self.start - 1, self.end) if edge > step]
        return None if self.done or not edges else min(edges)

    def covers(self, end_step: int) -> bool:
        """An interval ending at ``end_step`` (cut at the window's edges) is profiled."""
        return self.start <= end_step <= self.end

    def at(self, step: int) -> None:
        """Called after every host sync at ``step``: start before the window, stop at its end."""
        if self.done:
            return
        from harness.tfcompat import tf

        if step == self.start - 1 and not self.active:
            os.makedirs(self.logdir, exist_ok=True)
            try:
                tf.profiler.experimental.start(self.logdir)
            except Exception as exc:  # noqa: BLE001 - a profiler that fails must not end a run
                self.error = f"{type(exc).__name__}: {exc}"
                self.done = True
                self.log(f"profile: the TF profiler did not start: {self.error}")
                return
            self.active = True
        elif step >= self.end and self.active:
            self.stop()

    def stop(self) -> None:
        if not self.active:
            return
        from harness.tfcompat import tf

        self.active, self.done = False, True
        try:
            tf.profiler.experimental.stop()
        except Exception as exc:  # noqa: BLE001 - see at()
            self.error = f"{type(exc).__name__}: {exc}"
        self.log(f"profile: steps {self.start}-{self.end} traced into "
                 f"{os.path.relpath(self.logdir, self.run_folder)}")

    def to_dict(self) -> dict[str, Any]:
        files = sorted(glob.glob(os.path.join(self.logdir, "plugins", "profile", "*", "*")))
        return {"start_step": self.start, "end_step": self.end, "steps": self.end - self.start + 1,
                "logdir": os.path.relpath(self.logdir, self.run_folder),
                "files": [os.path.relpath(f, self.run_folder) for f in files],
                "tool": "tf.profiler", "error": self.error}


def adapter_profile(options: dict[str, Any], start_step: int, steps: int) -> dict[str, Any]:
    """What a backend without a TF trace did with ``profile:``: the adapter's profiling."""
    return {"start_step": start_step, "end_step": start_step + steps - 1, "steps": steps,
            "tool": "adapter profiling (npu.profiling)", "whole_run": True,
            "profiling": bool(options.get("profiling")),
            "profiling_options": options.get("profiling_options"), "files": [], "error": None}

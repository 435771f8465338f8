"""The run-level watchdog: the case's ``timeout`` and the first SIGINT / SIGTERM are enforced
even while the main thread is stuck inside a TensorFlow op, and the report still gets written.

Python runs signal handlers only in the main thread between bytecodes, and a TensorFlow call
may block while holding the GIL (a multi-worker strategy waiting for a peer that never
comes), so no thread of this process can be relied on. The watchdog is therefore a small
guard process (:mod:`harness.run.guard`). CPython's C-level signal handler, which needs no
GIL, writes each caught signal's number to the ``signal.set_wakeup_fd`` pipe; its read end
is the guard's. The guard

1. on the first SIGINT/SIGTERM, or at the deadline (``timeout``, default 6 h, from the start
   of the run; then it sends SIGUSR1), gives this process ``stop_grace()`` seconds: a main
   thread running Python gets one KeyboardInterrupt and the session writes the report;
2. if none was written by then, this process is stuck: the guard writes the report from the
   state the session keeps on disk (the report so far, the running count's event stream)
   and ends this process with SIGQUIT, whose handler here is libc ``_exit``: a handler gets
   the signal number as its argument, so the exit status is 3 (EXIT_RUN_FAILED), with no
   GIL needed.

Repeated signals never interrupt the report being written: after the first, they are only
recorded. Both sides write under one ``flock``, so exactly one report is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import EXIT_RUN_FAILED
from harness.reports.store import to_json, write_atomic
from harness.run.events import JsonlEventSink

if TYPE_CHECKING:
    from harness.plugins import BenchPlugins

STOP_GRACE_S = 10.0  # from a stop request until the guard writes the report itself
GRACE_ENV = "BENCH_STOP_GRACE_S"  # overrides STOP_GRACE_S (the tests use a short one)
SIGNALS = (signal.SIGINT, signal.SIGTERM)
TIMEOUT_SIGNAL = signal.SIGUSR1  # the guard's "the deadline has passed"
EXIT_SIGNAL = signal.SIGQUIT  # number 3 == EXIT_RUN_FAILED: its handler is _exit
STATE, EVENTS, LOCK = ".watchdog.json", ".watchdog-events.jsonl", ".watchdog.lock"
assert int(EXIT_SIGNAL) == EXIT_RUN_FAILED


def stop_grace() -> float:
    try:
        value = float(os.environ.get(GRACE_ENV, "") or STOP_GRACE_S)
    except ValueError:
        return STOP_GRACE_S
    return min(value, 3600.0) if value > 0 else STOP_GRACE_S


def _exit_on(signum: int) -> Callable[[], None] | None:
    """Make ``signum``'s handler libc ``_exit`` (so the process exits with status
    ``signum`` from any thread, GIL or not); returns the undo, or None where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        previous = libc.signal(int(signum), ctypes.cast(libc._exit, ctypes.c_void_p).value)
    except (OSError, AttributeError):
        return None
    if previous == ctypes.c_void_p(-1).value:  # SIG_ERR
        return None
    return lambda: libc.signal(int(signum), previous)


class Watchdog:
    """``with Watchdog(folder, seconds, timeout_s, plugins) as dog:`` around a case run.

    ``seconds``: until the deadline. The session keeps the guard's state current with
    :meth:`save` (the report so far) and :attr:`sink` (an event sink streaming the running
    count), and writes its own report through :meth:`write_once`. ``reason`` is None,
    ``"timeout"`` or ``"interrupted"``; ``message`` says which signal or timeout.
    """

    # bench run (the CLI) sets it: once a run stopped for a signal or its timeout, later
    # SIGINT/SIGTERMs are ignored until bench exits, so they cannot cut the summary, the exit
    # status or Python's shutdown (which restores SIG_DFL for Python handlers, not SIG_IGN);
    # a library caller keeps its own handlers
    ignore_after_stop = False

    def __init__(self, folder: str, seconds: float, timeout_s: float,
                 plugins: BenchPlugins | None = None) -> None:
        self.folder = folder
        self.seconds = seconds
        self.timeout_s = timeout_s
        self.plugins = plugins
        self.reason: str | None = None
        self.message: str | None = None
        self.writing = False
        self.sink = JsonlEventSink(os.path.join(folder, EVENTS))
        self._raised = False
        self._guard: subprocess.Popen | None = None
        self._done_fd: int | None = None
        self._wakeup_fd: int | None = None
        self._saved: dict[int, Any] = {}
        self._saved_wakeup: int | None = None
        self._undo_exit: Callable[[], None] | None = None
        self._lock_file: Any = None

    # -- install / uninstall ------------------------------------------------------------

    def __enter__(self) -> Watchdog:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers need the main thread: no watchdog
        signal_read, signal_write = os.pipe()
        done_read, done_write = os.pipe()
        os.set_blocking(signal_write, False)
        self.save({})
        plugin_modules = [i.module for i in self.plugins.infos.values()
                          if i.source in ("--plugin", "case file") and i.module] if self.plugins else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self._guard = subprocess.Popen(
                [sys.executable, "-m", "harness.run.guard", str(os.getpid()), self.folder,
                 str(signal_read), str(done_read), repr(self.seconds), repr(self.timeout_s),
                 repr(stop_grace()), json.dumps(plugin_modules)],
                pass_fds=(signal_read, done_read), stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)  # Ctrl-C goes to bench's group, not to the guard
        except OSError:
            for fd in (signal_read, signal_write, done_read, done_write):
                os.close(fd)
            return self
        os.close(signal_read)
        os.close(done_read)
        self._wakeup_fd, self._done_fd = signal_write, done_write
        for signum in (*SIGNALS, TIMEOUT_SIGNAL):
            self._saved[signum] = signal.signal(signum, self._on_signal)
        self._saved_wakeup = signal.set_wakeup_fd(signal_write, warn_on_full_buffer=False)
        self._undo_exit = _exit_on(EXIT_SIGNAL)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._guard is None:
            return
        self._tell(b"D")
        os.close(self._done_fd)  # EOF: the guard ends
        try:
            self._guard.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._guard.kill()
            self._guard.wait()
        signal.set_wakeup_fd(self._saved_wakeup if self._saved_wakeup is not None else -1)
        os.close(self._wakeup_fd)
        stopped = self.reason is not None and Watchdog.ignore_after_stop
        for signum, handler in self._saved.items():
            if stopped and signum in SIGNALS:
                handler = signal.SIG_IGN
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if self._undo_exit is not None:
            self._undo_exit()
        for name in (STATE, EVENTS, LOCK):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.folder, name))
        self._guard = None

    def _tell(self, message: bytes) -> None:
        if self._done_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._done_fd, message)

    # -- the main thread's side -------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The first SIGINT/SIGTERM, or the guard's SIGUSR1 at the deadline, raises
        KeyboardInterrupt once; later signals (and any while the report is written) are
        ignored."""
        if self.reason is None and not self.writing:
            if signum == TIMEOUT_SIGNAL:
                self.reason = "timeout"
                self.message = f"run exceeded its {self.timeout_s:g} s timeout"
            else:
                self.reason = "interrupted"
                self.message = f"interrupted by {signal.Signals(signum).name}"
        if self._raised or self.writing:
            return
        self._raised = True
        raise KeyboardInterrupt

    def save(self, report: dict[str, Any]) -> None:
        """The report as it stands (results of finished counts included): what the guard
        writes from if this process gets stuck. Never fails the run."""
        with contextlib.suppress(OSError, TypeError, ValueError):
            write_atomic(os.path.join(self.folder, STATE), to_json(report, indent=None))

    def write_once(self, write: Callable[[], None]) -> bool:
        """Run ``write`` (the session's report) unless the guard has written the report."""
        self.writing = True
        self._tell(b"W")
        lock = None
        if self._guard is not None:
            with contextlib.suppress(OSError):
                lock = open(os.path.join(self.folder, LOCK), "a")  # noqa: SIM115
                fcntl.flock(lock, fcntl.LOCK_EX)  # blocks only while the guard writes
        try:
            write()
        finally:
            self._tell(b"D")
            if lock is not None:
                lock.close()
        return True

"""Run events: the runner's calls fanned out to the sinks that plugins return (MLLOG, TensorBoard).

In a process launch the workers do not write the run folder's event files: each worker
streams its events as JSON lines (:class:`JsonlEventSink`) and the parent replays the first
rank's stream into the run's own sinks (:class:`EventReplay`), so ``events.mllog`` and
``tensorboard/devices_<N>/`` have one writer and one place for every launcher.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any, Callable

from harness.context import RunContext

if TYPE_CHECKING:
    from harness.case import Case
    from harness.plugins import BenchPlugins

EVENTS = ("run_start", "interval", "evaluate", "run_stop", "close")


class RunEvents:
    """Calls ``sink.<event>(**data)`` on every sink that has that method.

    A sink that raises is logged and dropped: a broken event log must not end a benchmark
    (the report still records the measurement). KeyboardInterrupt passes through.
    """

    def __init__(self, sinks: list[Any] = (), log: Callable[[str], None] = print) -> None:
        self.sinks = list(sinks)
        self.log = log

    @classmethod
    def open(cls, plugins: BenchPlugins, case: Case, folder: str,
             log: Callable[[str], None]) -> RunEvents:
        sinks = [s for s in plugins.hook.run_event_sink(case=case, folder=folder) if s is not None]
        return cls(sinks, log)

    def emit(self, event: str, **data: Any) -> None:
        for sink in list(self.sinks):
            method = getattr(sink, event, None)
            if method is None:
                continue
            try:
                method(**data)
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                self.log(f"event sink {type(sink).__name__} failed at {event}: "
                         f"{type(exc).__name__}: {exc}; it is disabled for this run")
                self.sinks.remove(sink)

    def close(self, status: str) -> None:
        self.emit("close", status=status)
        self.sinks.clear()


def _plain_context(ctx: RunContext) -> dict[str, Any]:
    """The JSON-ready fields of a RunContext (no strategy, no model)."""
    skip = {"strategy", "model_spec"}
    return {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name not in skip}


class JsonlEventSink:
    """A worker's events, one JSON line each, appended to ``path`` as they happen (the parent
    reads them while the worker runs, and the merge falls back on the interval lines of a
    worker that died before writing its result)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, kind: str, **data: Any) -> None:
        line = json.dumps({"kind": kind, "time_unix": time.time(), **data}, default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def run_start(self, case: Case, ctx: RunContext, total_steps: int, init_seconds: float) -> None:
        self._write("run_start", ctx=_plain_context(ctx), total_steps=total_steps,
                    init_seconds=init_seconds)

    def interval(self, record: dict[str, Any], interval: dict[str, Any]) -> None:
        self._write("interval", record=record, interval=interval)

    def evaluate(self, step: int, metrics: dict[str, float], seconds: float) -> None:
        self._write("evaluate", step=step, metrics=metrics, seconds=seconds)


def read_event_lines(path: str) -> list[dict[str, Any]]:
    """Every complete JSON line of a worker's event stream (a missing file has none)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip().endswith("}")]
    except OSError:
        return []


class EventReplay:
    """Replays a worker's event stream into ``events`` as its lines arrive (``poll``).

    ``run_start`` gets a :class:`RunContext` rebuilt from the worker's plain fields:
    ``strategy`` and ``model_spec`` are None on this side. ``run_stop`` is not replayed: the
    launcher's caller emits it with the merged result of all ranks.
    """

    def __init__(self, path: str, case: Case, events: RunEvents) -> None:
        self.path = path
        self.case = case
        self.events = events
        self.offset = 0

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._emit(event)

    def _emit(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "run_start":
            self.events.emit("run_start", case=self.case, ctx=RunContext(**event["ctx"]),
                             total_steps=event["total_steps"],
                             init_seconds=event["init_seconds"])
        elif kind == "interval":
            self.events.emit("interval", record=event["record"], interval=event["interval"])
        elif kind == "evaluate":
            self.events.emit("evaluate", step=event["step"], metrics=event["metrics"],
                             seconds=event["seconds"])

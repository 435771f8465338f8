"""Run events: the runner's calls fanned out to the sinks that plugins return (MLLOG, TensorBoard)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness.case import Case
    from harness.plugins import BenchPlugins


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

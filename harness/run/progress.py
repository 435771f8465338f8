"""Training progress: a rich bar on a terminal, plain log lines everywhere else."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class PlainProgress:
    """No bar: the log lines (printed by the runner's log function) are the progress."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def start(self, case: Any, devices: int, total: int) -> None:
        self.print(f"== {case.name}: {case.model} on {devices} {case.device} device(s), "
                   f"{total} steps ({case.train.warmup_steps} warmup)")

    def update(self, record: dict[str, Any]) -> None:
        pass

    def stop(self) -> None:
        pass

    def print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class RichProgress(PlainProgress):
    """A live bar (steps, loss, samples/s); log lines scroll above it."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} samples/s"),
            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = None

    def start(self, case: Any, devices: int, total: int) -> None:
        super().start(case, devices, total)
        self.bar.start()
        self.task = self.bar.add_task(f"{case.name} x{devices}", total=total, loss="-", rate="-")

    def update(self, record: dict[str, Any]) -> None:
        if self.task is not None:
            loss = "-" if record.get("loss") is None else f"{record['loss']:.4f}"
            self.bar.update(self.task, completed=record["step"], loss=loss,
                            rate=f"{record['samples_per_sec']:.1f}")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()
            self.task = None

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)


def make_progress() -> PlainProgress:
    return RichProgress() if sys.stdout.isatty() else PlainProgress()

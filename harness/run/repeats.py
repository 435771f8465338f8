"""Repeated measurements of one device count: their statistics and the pooled result.

Each repeat is an independent measurement (a freshly built model and input pipeline). Its
figure is its own whole-window rate (its samples / its measured seconds); the pooled result's
throughput is all repeats' samples / all their measured seconds, and its intervals are every
repeat's, tagged with ``repeat`` (1, 2, ...), so ``bench compare`` pools them all.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from harness.run.memory import max_memory
from harness.run.result import Status, worst_status
from harness.run.throughput import rates_by_repeat, repeat_statistics

if TYPE_CHECKING:
    from harness.run.result import Result


def pool(results: list[Result], requested: int) -> Result:
    """One result from the repeats of one count: throughput over every repeat's intervals,
    the worst status (the first error), the largest memory figures, the summed wall time
    and time breakdown; loss, accuracy and evaluations of the first repeat; ``repeats`` with the statistics of
    the repeats that finished ok (``requested``: how many were asked for; a repeat that
    does not finish ok stops the rest)."""
    first = results[0]
    if requested == 1:
        return first
    pooled = replace(first)
    intervals = [replace(i, repeat=index + 1) for index, r in enumerate(results)
                 for i in r.intervals()]
    pooled.set_intervals(intervals)
    pooled.status = worst_status([r.status for r in results])
    pooled.error = next((f"repeat {i + 1}: {r.error}" for i, r in enumerate(results)
                         if r.error), None)
    pooled.traceback = next((r.traceback for r in results if r.traceback), None)
    pooled.memory = max_memory([r.memory for r in results])
    pooled.wall_time_s = sum(r.wall_time_s or 0.0 for r in results)
    # every repeat's time, so the breakdown still adds up to the summed wall time
    pooled.time = {key: None if all(r.time.get(key) is None for r in results)
                   else sum(r.time.get(key) or 0.0 for r in results) for key in first.time}
    ok = [index + 1 for index, r in enumerate(results) if r.status is Status.OK]
    rates = rates_by_repeat([i for i in intervals if i.repeat in ok])
    pooled.repeats = {**repeat_statistics(rates), "requested": requested}
    pooled.set_mfu()
    return pooled

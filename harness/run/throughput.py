"""Measured-window statistics: global throughput, per-interval spread, step time."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """``steps`` training steps ending at ``end_step``, ``samples`` global samples, host-timed;
    ``repeat`` is the index of the measurement it belongs to when a count was repeated."""

    end_step: int
    steps: int
    samples: int
    seconds: float
    repeat: int | None = None

    @property
    def samples_per_sec(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {"step": self.end_step, "steps": self.steps, "samples": self.samples,
               "seconds": self.seconds, "samples_per_sec": self.samples_per_sec}
        if self.repeat is not None:
            out["repeat"] = self.repeat
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        return cls(data["step"], data["steps"], data["samples"], data["seconds"],
                   data.get("repeat"))


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(intervals: list[Interval], devices: int) -> dict[str, Any]:
    """Throughput and step-time blocks of a result.

    ``samples_per_sec`` is all samples of the measured window divided by its wall time (the
    intervals are contiguous and host-synchronised at their ends), never a mean of per-step
    rates; the per-interval rates only describe the spread (median, p5, p95).
    """
    samples = sum(i.samples for i in intervals)
    seconds = sum(i.seconds for i in intervals)
    rate = samples / seconds if seconds > 0 else 0.0
    rates = [i.samples_per_sec for i in intervals]
    step_ms = [1000.0 * i.seconds / i.steps for i in intervals if i.steps]
    return {
        "measured_steps": sum(i.steps for i in intervals),
        "measured_samples": samples,
        "measured_seconds": seconds,
        "throughput": {
            "samples_per_sec": rate,
            "per_device": rate / devices if devices else None,
            "median": _pct(rates, 50),
            "p5": _pct(rates, 5),
            "p95": _pct(rates, 95),
            "intervals": [i.to_dict() for i in intervals],
        },
        "step_time_ms": {"median": _pct(step_ms, 50), "p5": _pct(step_ms, 5),
                         "p95": _pct(step_ms, 95)},
    }


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


def repeat_statistics(rates: list[float]) -> dict[str, Any]:
    """``{n, samples_per_sec, mean, stdev, ci95, olympic_mean}`` of per-repeat rates.

    ``stdev`` is the sample standard deviation (n - 1); ``ci95`` the two-sided 95 % interval
    of the mean from the t distribution, mean -/+ t(0.975, n - 1) x stdev / sqrt(n); the
    olympic mean drops the fastest and the slowest repeat (MLPerf's scoring; n >= 3).
    Statistics that need more repeats than there are stay None.
    """
    n = len(rates)
    mean = statistics.mean(rates) if rates else None
    stdev = statistics.stdev(rates) if n >= 2 else None
    ci95 = None
    if stdev is not None and mean is not None:
        half = t_quantile(0.975, n - 1) * stdev / math.sqrt(n)
        ci95 = [mean - half, mean + half]
    olympic = statistics.mean(sorted(rates)[1:-1]) if n >= 3 else None
    return {"n": n, "samples_per_sec": list(rates), "mean": mean, "stdev": stdev,
            "ci95": ci95, "olympic_mean": olympic}


def rates_by_repeat(intervals: list[Interval]) -> list[float]:
    """Each repeat's whole-window rate from tagged intervals, in repeat order."""
    samples: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for interval in intervals:
        key = interval.repeat or 0
        samples[key] = samples.get(key, 0) + interval.samples
        seconds[key] = seconds.get(key, 0.0) + interval.seconds
    return [samples[k] / seconds[k] if seconds[k] > 0 else 0.0 for k in sorted(samples)]

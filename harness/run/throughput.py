"""Measured-window statistics: global throughput, per-interval spread, step time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """``steps`` training steps ending at ``end_step``, ``samples`` global samples, host-timed."""

    end_step: int
    steps: int
    samples: int
    seconds: float

    @property
    def samples_per_sec(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.end_step, "steps": self.steps, "samples": self.samples,
                "seconds": self.seconds, "samples_per_sec": self.samples_per_sec}


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

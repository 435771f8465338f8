"""The train input pipeline timed alone: the same dataset (its batches, its prefetch), no model.

``bench run --input-only`` measures it in place of training (intervals cut as training's
are); ``data.probe_steps`` times a short pass of it before training, and the result says
whether training ran at the pipeline's own rate (``bound``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from harness.run.throughput import Interval

BOUND_FRACTION = 0.9  # training at >= 90 % of the pipeline's own rate is input-bound


class BatchPuller:
    """Pulls batches off ``dataset`` inside one ``tf.function`` loop (no per-batch Python),
    touching each batch's first component so nothing is pruned; ``pull(n)`` returns only
    when the n batches exist on the host (a host sync, as a training interval's end).
    ``compiled=False`` pulls them in an eager Python loop instead (where every tf.function
    goes to a device adapter, as npu_device's does)."""

    def __init__(self, dataset: Any, compiled: bool = True) -> None:
        from harness.tfcompat import tf

        self._iterator = iter(dataset)
        self._compiled = compiled

        @tf.function
        def pull(iterator: Any, n: Any) -> Any:
            total = tf.constant(0, tf.int64)
            for _ in tf.range(n):
                batch = next(iterator)
                first = tf.nest.flatten(batch)[0]
                total += tf.cast(tf.size(first), tf.int64)
            return total

        self._pull = pull
        self._tf = tf

    def pull(self, n: int) -> int:
        tf = self._tf
        if self._compiled:
            return int(self._pull(self._iterator, tf.constant(n, tf.int64)))
        total = 0
        for _ in range(n):
            total += int(tf.size(tf.nest.flatten(next(self._iterator))[0]))
        return total


def time_pipeline(dataset: Any, steps: int, batch_samples: int, warmup: int | None = None,
                  compiled: bool = True) -> dict[str, Any]:
    """``steps`` batches of ``dataset`` timed after ``warmup`` untimed ones (default a fifth
    of ``steps``, at least 1: the first batch waits for shuffle buffers and file opens).
    Returns ``{samples_per_sec, steps, seconds, warmup_steps}``."""
    warmup = max(1, steps // 5) if warmup is None else warmup
    puller = BatchPuller(dataset, compiled)
    if warmup:
        puller.pull(warmup)
    began = time.perf_counter()
    puller.pull(steps)
    seconds = time.perf_counter() - began
    del puller  # frees the probe iterator's buffers before training starts
    return {"samples_per_sec": steps * batch_samples / seconds if seconds > 0 else None,
            "steps": steps, "seconds": seconds, "warmup_steps": warmup}


def input_only_intervals(dataset: Any, warmup: int, total: int, log_every: int,
                         global_batch: int, on_interval: Callable[[Interval], None],
                         on_start: Callable[[], None] | None = None,
                         compiled: bool = True) -> list[Interval]:
    """``bench run --input-only``: ``warmup`` batches untimed, then the steps up to ``total``
    in intervals ending at multiples of ``log_every`` (and at ``total``), each a host sync,
    as training's measured window is cut. ``on_start`` is called when the window starts,
    ``on_interval`` with each interval as it ends."""
    puller = BatchPuller(dataset, compiled)
    if warmup:
        puller.pull(warmup)
    if on_start is not None:
        on_start()
    step, intervals = warmup, []
    while step < total:
        end = min(total, (step // log_every + 1) * log_every)
        began = time.perf_counter()
        puller.pull(end - step)
        interval = Interval(end, end - step, (end - step) * global_batch,
                            time.perf_counter() - began)
        intervals.append(interval)
        on_interval(interval)
        step = end
    return intervals


def input_bound(train_rate: float | None, pipeline_rate: float | None) -> bool | None:
    """Training reached >= 90 % of the pipeline's own rate (None when either is unknown)."""
    if not train_rate or not pipeline_rate:
        return None
    return train_rate >= BOUND_FRACTION * pipeline_rate

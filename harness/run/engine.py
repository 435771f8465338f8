"""Training engines: how the runner's training steps execute.

The runner only launches steps and waits for their losses; an engine decides what a launch
is. :class:`EagerEngine` (TF 2) calls a compiled ``tf.function`` over a distributed iterator.
Launches return handles without a host sync, so the steps between two waits run as a bare
``tf.function`` loop would; ``wait`` is the host sync that ends an interval.
"""

from __future__ import annotations

from typing import Any, Callable

from harness.run.train_step import distribute, make_train_step, weights_digests


class EagerEngine:
    """Training steps as compiled ``tf.function`` calls over a distributed iterator."""

    def __init__(self, strategy: Any, spec: Any, dataset: Any, global_batch_size: int,
                 all_reduce: Callable[[list], list] | None = None) -> None:
        self.strategy = strategy
        self.spec = spec
        self._step = make_train_step(strategy, spec, global_batch_size, all_reduce)
        self._iterator = iter(distribute(strategy, dataset))

    @property
    def iterator(self) -> Any:
        """The input iterator the steps read (a checkpoint may save its position)."""
        return self._iterator

    def launch(self, steps: int) -> list[Any]:
        """Start ``steps`` training steps; returns their (device) losses, unsynced."""
        return [self._step(self._iterator) for _ in range(steps)]

    def wait(self, handles: list[list[Any]]) -> list[float]:
        """Host sync: the per-step global mean losses of the launches ``handles``."""
        return [float(loss) for handle in handles for loss in handle]

    def weights_digests(self) -> list[str]:
        return weights_digests(self.strategy, self.spec.model)

"""What a device backend does for the runner: process setup, strategy, precision, peak FLOP/s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import BenchError

if TYPE_CHECKING:
    from harness.case import Case


class DeviceBackend:
    """Base class of the cpu / gpu / npu backends; a third-party backend subclasses it.

    The runner calls, in order: ``available()`` (may the case use it), ``prepare(case,
    max_devices)`` once per process before TensorFlow builds anything, then per device count
    ``precision_policy`` / ``strategy`` / ``wrap_optimizer``, and ``peak_flops`` for MFU.
    """

    name = "base"
    description = ""

    @classmethod
    def available(cls) -> bool:
        return False

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """``{"type", "name", "count"}`` of what is present (for ``bench list`` and reports)."""
        return {"type": cls.name, "name": "", "count": 0}

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        """Process-wide setup before TensorFlow initialises (logical devices, options)."""

    def strategy(self, count: int, workers: int = 1) -> Any:
        """The ``tf.distribute.Strategy`` over ``count`` local devices in each of ``workers``
        processes (the process launcher sets the cluster up: TF_CONFIG or the HCCL env)."""
        from harness.tfcompat import tf

        if count != 1:
            raise BenchError(f"device {self.name!r} runs one device per process; "
                             f"use launcher: process for {count}")
        return tf.distribute.get_strategy()

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        return "float32"

    def wrap_optimizer(self, optimizer: Any, options: dict[str, Any]) -> Any:
        return optimizer

    def peak_flops(self, count: int, dtype: str) -> float | None:
        """Peak FLOP/s of ``count`` devices at ``dtype``, or None when unknown."""
        return None

    def environment(self) -> dict[str, Any]:
        return {}

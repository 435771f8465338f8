"""GPU backend: MirroredStrategy over local GPUs, mixed_float16 with dynamic loss scaling."""

from __future__ import annotations

import glob
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from harness.devices.base import DeviceBackend
from harness.devices.cpu import multi_worker_strategy
from harness.errors import BenchError
from harness.plugins import hookimpl

if TYPE_CHECKING:
    from harness.case import Case


def _gpus() -> list:
    from harness.tfcompat import tf

    return tf.config.list_physical_devices("GPU")


def nvidia_smi_names() -> list[str]:
    """GPU names from ``nvidia-smi`` (no TensorFlow needed); empty when it is absent."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


class GpuBackend(DeviceBackend):
    name = "gpu"
    description = "CUDA GPUs through tf.config; MirroredStrategy, mixed_float16"

    @classmethod
    def available(cls) -> bool:
        # No driver, no GPU: answer without importing TensorFlow (keeps `bench list` fast).
        if not (shutil.which("nvidia-smi") or glob.glob("/dev/nvidia[0-9]*")):
            return False
        return bool(_gpus())

    @classmethod
    def describe(cls) -> dict[str, Any]:
        names = nvidia_smi_names()
        return {"type": "gpu", "name": names[0] if names else "", "count": len(names)}

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        from harness.tfcompat import tf

        gpus = _gpus()
        if len(gpus) < max_devices:
            raise BenchError(f"{case.source}: devices: {max_devices} GPUs wanted, "
                             f"{len(gpus)} visible")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # runtime already initialised; growth was set by an earlier case
        if options.get("jit_compile"):
            tf.config.optimizer.set_jit(True)

    def strategy(self, count: int, workers: int = 1) -> Any:
        from harness.tfcompat import tf

        if workers > 1:
            return multi_worker_strategy()
        if count == 1:
            return tf.distribute.get_strategy()  # places on /gpu:0, adds nothing to the step
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(count)])

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        return "mixed_float16" if case.precision == "mixed" else "float32"

    def wrap_optimizer(self, optimizer: Any, options: dict[str, Any]) -> Any:
        from harness import tfcompat

        if options.get("precision") != "mixed" or tfcompat.is_loss_scale_optimizer(optimizer):
            return optimizer
        scale = options.get("loss_scale", "dynamic")
        if scale == "dynamic":
            return tfcompat.loss_scale_optimizer(optimizer, dynamic=True)
        return tfcompat.loss_scale_optimizer(optimizer, dynamic=False, initial_scale=float(scale))


@hookimpl
def register_devices(registry: Any) -> None:
    registry.add(GpuBackend)

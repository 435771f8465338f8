"""GPU backend: MirroredStrategy over local GPUs, mixed_float16 with dynamic loss scaling."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from harness.devices.base import DeviceBackend
from harness.devices.cpu import multi_worker_strategy
from harness.devices.options import loss_scale
from harness.devices.peak_flops import TERA, lookup
from harness.errors import BenchError
from harness.markers import hookimpl

if TYPE_CHECKING:
    from harness.case import Case


def _gpus() -> list:
    from harness import tfcompat

    return tfcompat.physical_devices("GPU")


def nvidia_smi(fields: str = "name,driver_version,memory.total") -> list[dict[str, str]]:
    """One mapping per GPU from ``nvidia-smi --query-gpu`` (no TensorFlow needed); empty when
    the tool is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = fields.split(",")
    return [dict(zip(names, (cell.strip() for cell in line.split(","))))
            for line in out.splitlines() if line.strip()]


def nvidia_smi_names() -> list[str]:
    return [gpu["name"] for gpu in nvidia_smi("name")]


def tf_gpu_names() -> list[str]:
    """Device names as TensorFlow sees them (``NVIDIA A100-SXM4-80GB``), in its order."""
    from harness.tfcompat import tf

    names = []
    for gpu in _gpus():
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", ""))
        except (RuntimeError, ValueError, AttributeError):  # AttributeError: TF < 2.3
            names.append("")
    return names


def tf32_enabled() -> bool:
    from harness.tfcompat import tf

    enabled = getattr(tf.config.experimental, "tensor_float_32_execution_enabled", None)
    return bool(enabled()) if enabled is not None else False  # TF < 2.4: no TF32 at all


def peak_dtype(dtype: str, tf32: bool) -> str:
    """Where float32 matmuls run on tensor cores (TF32, TensorFlow's default on Ampere and
    later), the table's tf32 column is the float32 peak."""
    return "tf32" if dtype == "float32" and tf32 else dtype


class GpuMemoryMonitor:
    """Peak bytes of TensorFlow's GPU allocator (``tf.config.experimental.get_memory_info``,
    reset at the window start): this process's figure, not nvidia-smi's whole-GPU usage."""

    sample_interval = 0.0

    def __init__(self, count: int) -> None:
        self.devices = [f"GPU:{i}" for i in range(count)]

    def start(self) -> None:
        from harness.tfcompat import tf

        for device in self.devices:
            tf.config.experimental.reset_memory_stats(device)

    def sample(self) -> None:
        pass

    def stop(self) -> dict[str, Any]:
        from harness.tfcompat import tf

        peaks = [int(tf.config.experimental.get_memory_info(d)["peak"]) for d in self.devices]
        index = max(range(len(peaks)), key=peaks.__getitem__) if peaks else 0
        return {"device_peak_bytes": max(peaks) if peaks else None,
                "device_total_bytes": gpu_total_bytes(index),
                "device_source": "tf.config.experimental.get_memory_info peak (this process)"}


def gpu_total_bytes(index: int) -> int | None:
    """Capacity of TensorFlow's GPU ``index`` (nvidia-smi ``memory.total``, through
    CUDA_VISIBLE_DEVICES when it remaps), or None."""
    from harness.run.memory import parse_mib

    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
               if v.strip()]
    physical = visible[index] if index < len(visible) else str(index)
    for gpu in nvidia_smi("index,uuid,memory.total"):
        if physical in (gpu.get("index"), gpu.get("uuid")):
            return parse_mib(gpu.get("memory.total", ""))
    return None


class GpuBackend(DeviceBackend):
    name = "gpu"
    description = "CUDA GPUs through tf.config; MirroredStrategy, mixed_float16"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    @classmethod
    def available(cls) -> bool:
        # No driver, no GPU: answer without importing TensorFlow (keeps `bench list` fast).
        if not (shutil.which("nvidia-smi") or glob.glob("/dev/nvidia[0-9]*")):
            return False
        return bool(_gpus())

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not (shutil.which("nvidia-smi") or glob.glob("/dev/nvidia[0-9]*")):
            return "no NVIDIA driver: neither nvidia-smi nor /dev/nvidia* is present"
        return "TensorFlow lists no GPU (a CPU-only build, or CUDA libraries it cannot load)"

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
            # XLA auto-clustering for every tf.function, the train step included.
            tf.config.optimizer.set_jit(True)
        self.options = options

    def strategy(self, count: int, workers: int = 1) -> Any:
        from harness.tfcompat import tf

        if workers > 1:
            return multi_worker_strategy(self)
        if count == 1:
            return tf.distribute.get_strategy()  # places on /gpu:0, adds nothing to the step
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(count)])

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        return "mixed_float16" if case.precision == "mixed" else "float32"

    def wrap_optimizer(self, optimizer: Any, options: dict[str, Any]) -> Any:
        from harness import tfcompat

        scale = loss_scale(options, wanted=options.get("precision") == "mixed")
        if scale is None or tfcompat.is_loss_scale_optimizer(optimizer):
            return optimizer
        if scale == "dynamic":
            return tfcompat.loss_scale_optimizer(optimizer, dynamic=True)
        return tfcompat.loss_scale_optimizer(optimizer, dynamic=False, initial_scale=float(scale))

    def memory_monitor(self, count: int) -> GpuMemoryMonitor:
        return GpuMemoryMonitor(count)

    def peak_flops(self, count: int, dtype: str) -> float | None:
        if self.options.get("peak_tflops"):
            return count * float(self.options["peak_tflops"]) * TERA
        names = (tf_gpu_names() or nvidia_smi_names())[:count]
        if len(names) < count:
            return None
        peaks = [lookup(name, peak_dtype(dtype, tf32_enabled())) for name in names]
        return sum(peaks) if all(peaks) else None


@hookimpl
def register_devices(registry: Any) -> None:
    registry.add(GpuBackend)


def _build_info(tf: Any) -> dict[str, Any]:
    """``tf.sysconfig.get_build_info()`` (TF >= 2.3); on TF 1.15 only whether it is a CUDA
    build (its build_info module holds no versions)."""
    getter = getattr(tf.sysconfig, "get_build_info", None)
    if getter is not None:
        return dict(getter())
    from tensorflow.python.platform import build_info

    return {"is_cuda_build": bool(getattr(build_info, "is_cuda_build", False))}


@hookimpl
def environment(env: dict[str, Any]) -> None:
    """GPU names and driver from nvidia-smi; the CUDA/cuDNN TensorFlow was built against
    (only when TensorFlow is already loaded: the fingerprint does not import it for this)."""
    gpus = nvidia_smi()
    build: dict[str, Any] = {}
    if "tensorflow" in sys.modules:
        try:
            from harness.tfcompat import tf

            info = _build_info(tf)
            # None on CPU-only builds (tensorflow-cpu 2.6.5 has no cuda_version key at all)
            build = {"cuda_build": info.get("cuda_version") if info.get("is_cuda_build") else None,
                     "cudnn_build": info.get("cudnn_version") if info.get("is_cuda_build") else None}
        except (AttributeError, ImportError):
            pass
    if not gpus and not any(build.values()):
        return
    driver = gpus[0].get("driver_version") if gpus else None
    env["gpu"] = {"names": [gpu.get("name", "") for gpu in gpus], "count": len(gpus),
                  "memory": [gpu.get("memory.total", "") for gpu in gpus],
                  "driver_version": driver, **build}
    if driver and not env.get("driver_version"):
        env["driver_version"] = driver

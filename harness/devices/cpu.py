"""CPU backend: N logical CPU devices under MirroredStrategy; bf16 for mixed precision."""

from __future__ import annotations

import json
import math
import os
import time
from typing import TYPE_CHECKING, Any

from harness.devices.base import DeviceBackend
from harness.errors import BenchError
from harness.host import cache_dir, cpu_model
from harness.markers import hookimpl
from harness.reports.store import write_atomic
from harness.tfcompat import LOGICAL_DEVICES_ENV
from harness.userfiles import read_setting

if TYPE_CHECKING:
    from harness.case import Case


def measure_matmul_flops(dtype: str, size: int = 1024, repeats: int = 8) -> float:
    """Best-of FLOP/s of a square matmul on the CPU: the peak that MFU divides by."""
    from harness import tfcompat
    from harness.tfcompat import tf

    if not tfcompat.executes_eagerly():
        return _graph_matmul_flops(dtype, size, repeats)
    with tf.device("/cpu:0"):
        a = tf.random.normal((size, size), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a).numpy()
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def _graph_matmul_flops(dtype: str, size: int, repeats: int) -> float:
    """The same probe in graph mode (TF 1.x, the graph engine): its own graph and session;
    the product's op is run, not fetched, so no copy to Python is timed."""
    from harness.tfcompat import tf

    graph = tf.Graph()
    with graph.as_default(), tf.device("/cpu:0"):
        a = tf.compat.v1.get_variable("a", initializer=tf.random.normal((size, size)),
                                      use_resource=True)
        x = tf.cast(a.read_value(), dtype)
        product = tf.matmul(x, x).op
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(a.initializer)
        session.run(product)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(product)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def multi_worker_strategy(backend: Any = None) -> Any:
    """MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (set by the process launcher),
    one per process: kept on ``backend`` and handed out again for every repeat. A second one
    in the same process re-enables collective ops under the first's cluster, and its first
    broadcast then fails now and then ("Delete called on non-empty BufRendezvous")."""
    from harness.tfcompat import tf

    strategy = getattr(backend, "_multi_worker_strategy", None)
    if strategy is None:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if backend is not None:
            backend._multi_worker_strategy = strategy
    return strategy


class CpuBackend(DeviceBackend):
    name = "cpu"
    description = "host CPU; N logical devices under MirroredStrategy"

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"type": "cpu", "name": cpu_model(), "count": os.cpu_count() or 1}

    @classmethod
    def reserve(cls, max_devices: int) -> None:
        """Logical CPU devices are set once per process, when TensorFlow starts: ask for the
        most that any case of the run needs (``BENCH_CPU_LOGICAL_DEVICES``, read then)."""
        have = int(os.environ.get(LOGICAL_DEVICES_ENV, "0") or 0)
        if max_devices > have:
            os.environ[LOGICAL_DEVICES_ENV] = str(max_devices)

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        from harness import tfcompat

        wanted = max(max_devices, int(os.environ.get(LOGICAL_DEVICES_ENV, "0") or 0))
        physical = tfcompat.physical_devices("CPU")
        try:
            tfcompat.set_logical_devices(physical[0], wanted)
        except RuntimeError:
            pass  # already initialised in this process: check below what it has
        if max_devices == 1:
            return  # listing logical devices would start the runtime, before a worker's
            # MultiWorkerMirroredStrategy has configured its collective ops
        have = len(tfcompat.logical_devices("CPU"))
        if have < max_devices:
            raise BenchError(
                f"{case.source}: devices: {max_devices} CPU devices wanted, but TensorFlow was "
                f"initialised with {have} in this process (logical CPU devices are set once, "
                f"when TensorFlow starts); set {LOGICAL_DEVICES_ENV}={max_devices} before it "
                f"starts or use launcher: process")

    def strategy(self, count: int, workers: int = 1) -> Any:
        from harness.tfcompat import tf

        if workers > 1:
            return multi_worker_strategy(self)
        if count == 1:
            # The default strategy adds nothing to the step (OneDeviceStrategy costs ~10% on
            # small models through its distributed iterator).
            return tf.distribute.get_strategy()
        devices = [f"/cpu:{i}" for i in range(count)]
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice("/cpu:0"))

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        return "mixed_bfloat16" if case.precision == "mixed" else "float32"

    def peak_flops(self, count: int, dtype: str) -> float | None:
        """The best matmul rate ever probed on this CPU at ``dtype`` (a quick probe each run,
        the cache keeps the maximum: a probe taken while other work loads the cores would
        understate the peak and overstate MFU). Logical CPU devices share the same cores, so
        the peak is the whole CPU's whatever ``count``."""
        key = f"{cpu_model()}|{os.cpu_count()}|{dtype}"
        path = _peak_cache_path()
        cached = _read_peak_cache(path)
        probed = measure_matmul_flops(dtype, repeats=8 if key not in cached else 4)
        if probed > cached.get(key, 0.0):
            cached[key] = probed
            if path is not None:
                try:
                    write_atomic(path, json.dumps(cached))
                except OSError:
                    pass  # a read-only cache keeps nothing; this run's probe still counts
        return float(cached[key])


def _peak_cache_path() -> str | None:
    try:
        return os.path.join(cache_dir(), "cpu_peak_flops.json")
    except OSError:  # BENCH_CACHE_DIR on a read-only mount, say
        return None


def _read_peak_cache(path: str | None) -> dict[str, float]:
    """The cache's ``{key: FLOP/s}``; a missing, unreadable or foreign file counts as empty."""
    text = read_setting(path, limit=1 << 20) if path else None
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(k, str) and not isinstance(v, bool)
            and isinstance(v, (int, float)) and math.isfinite(v) and v > 0}


@hookimpl
def register_devices(registry: Any) -> None:
    registry.add(CpuBackend)

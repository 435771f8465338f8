"""The core of the fake: ``open``, ``global_options``, ``set_npu_loop_size``, device handles.

Real: Ascend/tensorflow tf_adapter_2.x/python/npu_device/npu_device.py (master 085a7b2e) and
its C++ backend (npu_device/core/npu_wrapper.cpp, npu_global.cpp). What is mirrored:

* ``open(device_id=None)``: the id is ``ASCEND_DEVICE_ID`` (a logical id; DEVICE_ID is not read
  at all), else 0. One device per process: the same id again returns the same handle, another
  id raises RuntimeError. ``global_options()`` is read here, so options must be set before.
  RANK_SIZE (or CM_WORKER_SIZE; both at once: ValueError) > 1 needs RANK_TABLE_FILE + RANK_ID
  or CM_CHIEF_IP + CM_CHIEF_PORT + CM_CHIEF_DEVICE (RuntimeError otherwise, the adapter's
  messages). A non-int id fails in the pybind11 call (TypeError).
* ``set_npu_loop_size(n)``: n <= 0 is logged and ignored (no exception); the initial value
  comes from ``NPU_LOOP_SIZE`` when the package is imported (non-numbers and <= 0 give 1).
* ``global_npu_ctx()`` is None until ``as_default()``; the collectives skip without it.

Assumed, not in the adapter's source (the graph engine's checks are closed source): at open()
the fake refuses a rank table that is missing or not JSON and, with profiling on, a
``profiling_options`` that is not a JSON object or whose ``aic_metrics`` is not an AI Core
metric group of CANN's profiler (aclprofAicoreMetrics), as "Failed open npu device N : ...".
"""

from __future__ import annotations

import builtins
import json
import os
import threading
from contextlib import contextmanager

from npu_device.configs.npu_config import NpuConfig

CALLS: list = []
# CANN profiler metric groups (hicann/runtime docs/api_docs/aclprofAicoreMetrics.md).
AIC_METRICS = ("ArithmeticUtilization", "PipeUtilization", "Memory", "MemoryL0",
               "ResourceConflictRatio", "MemoryUB", "L2Cache", "MemoryAccess")

_lock = threading.Lock()
_instances: dict = {}
_state: dict = {"options": None, "ctx": None}


def _loop_size_from_env() -> int:
    raw = os.environ.get("NPU_LOOP_SIZE")
    if raw is None:
        return 1
    try:
        size = int(raw.strip())
    except ValueError:
        return 1  # ReadInt64FromEnvVar fails and the default stays
    return size if size > 0 else 1  # "Npu loop size must be greater than 0" is only logged


_state["loop_size"] = _loop_size_from_env()
if "NPU_LOOP_SIZE" in os.environ:
    CALLS.append(("NPU_LOOP_SIZE", os.environ["NPU_LOOP_SIZE"], _state["loop_size"]))


def global_options() -> NpuConfig:
    with _lock:
        if _state["options"] is None:
            _state["options"] = NpuConfig()
    return _state["options"]


def set_npu_loop_size(loop_size) -> None:
    """Takes effect at the next call of a graph that is a loop (a tf.range/while loop that
    consumes an iterator); graphs without such a loop run once per call whatever the size."""
    if isinstance(loop_size, float) or not isinstance(loop_size, int):
        raise TypeError(f"SetNpuLoopSize(): incompatible function arguments. The following "
                        f"argument types are supported:\n    1. (arg0: int) -> None\n\n"
                        f"Invoked with: {loop_size!r}")
    CALLS.append(("set_npu_loop_size", loop_size))
    if loop_size > 0:
        _state["loop_size"] = loop_size


def fake_loop_size() -> int:
    """Fake-only: the loop size the next looped graph would run with."""
    return _state["loop_size"]


def set_device_sat_mode(mode) -> None:
    CALLS.append(("set_device_sat_mode", mode))


def is_inf_nan_enabled() -> bool:
    """The fake plays a saturation-mode chip (910A), where overflow sets a status flag."""
    return False


def get_ranksize() -> str:
    if os.getenv("CM_WORKER_SIZE") is not None and os.getenv("RANK_SIZE") is not None:
        raise ValueError("RANK_SIZE and CM_WORK_SIZE cannot be configured at the same time")
    return os.getenv("RANK_SIZE") if os.getenv("RANK_SIZE") is not None \
        else os.getenv("CM_WORKER_SIZE", "1")


def _cluster_checks(workers: int) -> None:
    if workers <= 1:
        return
    chief_ip, table = os.getenv("CM_CHIEF_IP"), os.getenv("RANK_TABLE_FILE")
    if chief_ip is not None and table is not None:
        raise RuntimeError("CM_CHIEF_IP and RANK_TABLE_FILE cannot be configured at the same time.")
    if chief_ip is not None:
        for var, what in (("CM_CHIEF_PORT", "port"), ("CM_CHIEF_DEVICE", "device")):
            if not os.getenv(var):
                raise RuntimeError(f"You must specify cm chief {what} by set env {var} in "
                                   f"distribution mode")
    elif table is not None:
        if not os.getenv("RANK_ID"):
            raise RuntimeError("You must specify rank id by set env RANK_ID in distribution mode")
    else:
        raise RuntimeError("CM_CHIEF_IP and RANK_TABLE_FILE are all not be configured.")


def _graph_engine_checks(device_id: int, options: dict, workers: int) -> None:
    """Assumed graph-engine refusals (see the module docstring), as open()'s RuntimeError."""
    problems = []
    table = os.getenv("RANK_TABLE_FILE")
    if workers > 1 and table is not None:
        try:
            with builtins.open(table, encoding="utf-8") as f:
                json.load(f)
        except (OSError, ValueError) as exc:
            problems.append(f"rank table {table}: {exc}")
    if options.get("enable_profiling") == "1":
        text = options.get("profiling_options") or ""
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(f"profiling_options is not a JSON object: {text!r}")
        elif "aic_metrics" in parsed and parsed["aic_metrics"] not in AIC_METRICS:
            problems.append(f"profiling_options aic_metrics {parsed['aic_metrics']!r} is not "
                            f"one of {', '.join(AIC_METRICS)}")
    if problems:
        raise RuntimeError(f"Failed open npu device {device_id} : {'; '.join(problems)}")


class NpuDeviceHandle:
    def __init__(self, device_id: int, workers_num: int, worker_id: int) -> None:
        self._device_id = device_id
        self._device_name = f"/job:localhost/replica:0/task:0/device:NPU:{device_id}"
        self.workers_num = workers_num
        self.worker_id = worker_id

    @property
    def device_id(self) -> int:  # fake-only convenience
        return self._device_id

    def name(self) -> str:
        return self._device_name

    def is_cluster_worker(self) -> bool:
        return self.workers_num > 1 and self.workers_num > self.worker_id >= 0

    def as_default(self) -> NpuDeviceHandle:
        CALLS.append(("as_default", self._device_id))
        _state["ctx"] = self
        return self

    @contextmanager
    def scope(self):
        yield


def open(device_id=None) -> NpuDeviceHandle:  # noqa: A001 - the adapter's name
    if device_id is None:
        device_id = int(os.getenv("ASCEND_DEVICE_ID", "0"))
    options = global_options().as_dict()
    try:
        workers = int(get_ranksize())
    except ValueError as exc:  # raised below, where the adapter reads RANK_SIZE
        workers = exc
    CALLS.append(("open", device_id, workers, options))
    with _lock:
        if device_id in _instances:
            return _instances[device_id]
        if _instances:
            raise RuntimeError(f"Failed create npu instance on device {device_id} as existed "
                               f"instance on {list(_instances)}")
        if isinstance(workers, ValueError):
            raise workers
        _cluster_checks(workers)
        if isinstance(device_id, bool) or not isinstance(device_id, int):
            raise TypeError(f"Open(): incompatible function arguments. The following argument "
                            f"types are supported:\n    1. (arg0: handle, arg1: str, arg2: int, "
                            f"arg3: Dict[str, str], arg4: Dict[str, str]) -> str\n\nInvoked "
                            f"with: device_index={device_id!r}")
        _graph_engine_checks(device_id, options, workers)
        # Real: hccl.manage.api.get_rank_id(), the rank of RANK_ID in the rank table.
        worker = int(os.getenv("RANK_ID", "0") or 0) if workers > 1 else 0
        _instances[device_id] = NpuDeviceHandle(device_id, workers, worker)
        return _instances[device_id]


def global_npu_ctx() -> NpuDeviceHandle | None:
    return _state["ctx"]


def enable_v1() -> None:
    """``npu_device.compat.enable_v1()``: TF 1 behaviour plus the TF 1 adapter's graph pass
    (the real one loads compat/v1/_tf_adapter.so, which checks NpuOptimizer session configs)."""
    CALLS.append(("enable_v1",))
    if _instances:
        os.environ["ASCEND_DEVICE_ID"] = str(list(_instances)[0])
    import tensorflow as tf

    tf.compat.v1.disable_v2_behavior()
    from npu_device.compat import v1

    v1._install_session_checks()


@contextmanager
def keep_dtype_scope():
    CALLS.append(("keep_dtype_scope",))
    yield

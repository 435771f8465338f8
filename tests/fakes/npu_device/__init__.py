"""Fake ``npu_device`` (Ascend's TF 2 adapter) for contract tests: records calls in CALLS.

Mirrors what the real package does at its API edge: ``global_options()`` is one options
object whose attributes reject unknown names and values outside their choices (ValueError, as
``npu_device.configs.option_base`` does); ``open(device_id)`` needs RANK_TABLE_FILE and RANK_ID
when RANK_SIZE > 1 and refuses a second device in one process (RuntimeError).
"""

from __future__ import annotations

import os

from npu_device import distribute, train
from npu_device.options import NpuConfig

__all__ = ["CALLS", "distribute", "global_options", "open", "train"]

CALLS: list = []
_state: dict = {"options": None, "handle": None}


def global_options() -> NpuConfig:
    if _state["options"] is None:
        _state["options"] = NpuConfig(CALLS)
    return _state["options"]


class NpuDeviceHandle:
    def __init__(self, device_id: int, workers_num: int, worker_id: int) -> None:
        self.device_id = device_id
        self.workers_num = workers_num
        self.worker_id = worker_id

    def is_cluster_worker(self) -> bool:
        return self.workers_num > 1 and self.workers_num > self.worker_id >= 0

    def as_default(self) -> NpuDeviceHandle:
        CALLS.append(("as_default", self.device_id))
        _state["handle"] = self
        return self


def open(device_id: int | None = None) -> NpuDeviceHandle:  # noqa: A001 - the adapter's name
    if device_id is None:
        device_id = int(os.getenv("ASCEND_DEVICE_ID", "0"))
    workers = int(os.getenv("RANK_SIZE", "1"))
    CALLS.append(("open", device_id, workers, global_options().as_dict()))
    handle = _state["handle"]
    if handle is not None:
        if handle.device_id == device_id:
            return handle
        raise RuntimeError(f"Failed create npu instance on device {device_id} as existed "
                           f"instance on [{handle.device_id}]")
    if workers > 1:
        if not os.getenv("RANK_TABLE_FILE"):
            raise RuntimeError("You must specify a rank table file by set env RANK_TABLE_FILE")
        if not os.getenv("RANK_ID"):
            raise RuntimeError("You must specify rank id by set env RANK_ID")
    return NpuDeviceHandle(device_id, workers, int(os.getenv("RANK_ID", "0")))


def global_npu_ctx() -> NpuDeviceHandle | None:
    return _state["handle"]

"""NPU backend: Huawei Ascend through the TF 2.x adapter ``npu_device`` (one device per process)."""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from harness.devices.base import DeviceBackend
from harness.errors import BenchError
from harness.plugins import hookimpl

if TYPE_CHECKING:
    from harness.case import Case


def adapter_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def device_id() -> int:
    """The adapter's own order: ASCEND_DEVICE_ID (logical) before DEVICE_ID (physical)."""
    for var in ("ASCEND_DEVICE_ID", "DEVICE_ID"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


class NpuBackend(DeviceBackend):
    name = "npu"
    description = "Ascend NPU through npu_device (TF 2.6.5 adapter)"

    @classmethod
    def available(cls) -> bool:
        return adapter_present("npu_device")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"type": "npu", "name": "Ascend" if cls.available() else "", "count": 0}

    def prepare(self, case: Case, max_devices: int, options: dict[str, Any]) -> None:
        if not adapter_present("npu_device"):
            hint = (" (npu_bridge, the TF 1.15 adapter, is installed: zoobench runs on TF 2 "
                    "through npu_device)" if adapter_present("npu_bridge") else "")
            raise BenchError(f"{case.source}: device: npu needs the npu_device package{hint}")
        import npu_device

        npu_device.open(device_id=device_id()).as_default()

    def precision_policy(self, case: Case, options: dict[str, Any]) -> str:
        # On Ascend the adapter's precision_mode lowers ops; Keras keeps float32 variables.
        return "float32"


@hookimpl
def register_devices(registry: Any) -> None:
    registry.add(NpuBackend)

"""``npu_device.compat``. Real: tf_adapter_2.x/python/npu_device/_api/compat/__init__.py."""

from __future__ import annotations

from npu_device.compat import v1
from npu_device.npu_device import enable_v1

__all__ = ["enable_v1", "v1"]

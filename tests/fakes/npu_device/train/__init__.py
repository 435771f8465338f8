"""``npu_device.train``. Real: tf_adapter_2.x/python/npu_device/_api/train/__init__.py."""

from __future__ import annotations

from npu_device.train import optimizer

__all__ = ["optimizer"]

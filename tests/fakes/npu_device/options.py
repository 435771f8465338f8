"""Kept for the tests that shrink ``PRECISION_MODES`` to play an older adapter (the same list
object the real option class checks against: npu_device/configs/npu_config.py)."""

from __future__ import annotations

from npu_device.configs.npu_config import PRECISION_MODES, NpuConfig

__all__ = ["PRECISION_MODES", "NpuConfig"]

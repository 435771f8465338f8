"""``npu_device.train.optimizer``. Real: tf_adapter_2.x/python/npu_device/_api/train/optimizer."""

from __future__ import annotations

from npu_device.train.optimizer.npu_loss_scale_optimizer import NpuLossScaleOptimizer

__all__ = ["NpuLossScaleOptimizer"]

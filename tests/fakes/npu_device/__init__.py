"""Fake ``npu_device`` (Ascend's TF 2.6.5 adapter) for contract tests: records calls in CALLS.

Mirrors the public API of Ascend/tensorflow tf_adapter_2.x/python/npu_device/__init__.py
(master 085a7b2e): ``open``, ``global_options``, ``set_npu_loop_size``, ``distribute``,
``train``, ``compat``; each module names the real file it follows and what it refuses.
Importing it does not import TensorFlow (the real one does); the collectives import it.
"""

from __future__ import annotations

from npu_device import compat, configs, distribute, options, train
from npu_device.npu_device import (
    AIC_METRICS,
    CALLS,
    NpuDeviceHandle,
    fake_loop_size,
    global_npu_ctx,
    global_options,
    is_inf_nan_enabled,
    keep_dtype_scope,
    open,
    set_device_sat_mode,
    set_npu_loop_size,
)

__all__ = ["AIC_METRICS", "CALLS", "NpuDeviceHandle", "compat", "configs", "distribute",
           "fake_loop_size", "global_npu_ctx", "global_options", "is_inf_nan_enabled",
           "keep_dtype_scope", "open", "options", "set_device_sat_mode", "set_npu_loop_size",
           "train"]

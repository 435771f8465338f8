"""The npu backend's TF 1.15 half: Ascend's ``npu_bridge`` adapter under the graph engine.

What a ModelZoo TF 1.15 ``sess.run`` script does, with the adapter's own names (Ascend/tensorflow
``tf_adapter/python/npu_bridge/``; /work/notes/adapters.md sums up the source):

* the session config: a ``NpuOptimizer`` custom optimizer whose parameter_map holds
  use_off_line, precision_mode, iterations_per_loop, hcom_parallel, enable_data_pre_proc and
  the dump/profiling keys, remapping OFF (:func:`harness.devices.npu_config.session_config`,
  which ``bench npu-config`` prints too), plus ``session_device_id``;
* loss scaling: ``NPULossScaleOptimizer`` over ``FixedLossScaleManager(scale)`` (static, the
  ResNeXt seed's 1024) or ``ExponentialUpdateLossScaleManager(...)`` (dynamic, BERT's);
* several devices: one process per device, gradients averaged by ``NPUDistributedOptimizer``
  (it needs JOB_ID; the process launcher sets it with the rank table and RANK_*), the reported
  loss summed with ``hccl_ops.allreduce``;
* the device loop: ``util.set_iteration_per_loop(sess, train_op, N)`` with the config's
  ``iterations_per_loop = N``, so one ``sess.run`` is N steps on the device.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from harness.devices.npu_config import session_config as npu_session_config
from harness.devices.options import FP16_MODES, dynamic_loss_scale, loss_scale, precision_mode
from harness.errors import BenchError


def check_environment(size: int) -> None:
    """Multi-rank runs need JOB_ID: NPUDistributedOptimizer takes the rank size from the job
    info NPUBasics reads, which is None without it (an AttributeError deep in graph building)."""
    if size > 1 and not os.environ.get("JOB_ID"):
        raise BenchError(f"RANK_SIZE={size} with npu_bridge needs JOB_ID in the environment "
                         f"(launcher: process sets it)")


def session_config(options: Mapping[str, Any], steps_per_loop: int, device_id: int) -> Any:
    """The graph engine's ConfigProto: the sess.run recipe's NpuOptimizer config with
    ``iterations_per_loop`` = the engine's loop (the device loop runs that many steps) and the
    device this rank opens."""
    config = npu_session_config({**options, "iterations_per_loop": int(steps_per_loop)})
    config.allow_soft_placement = True  # as npu_config_proto sets it
    for custom in config.graph_options.rewrite_options.custom_optimizers:
        if custom.name == "NpuOptimizer":
            custom.parameter_map["session_device_id"].i = int(device_id)
    return config


def loss_scale_manager(options: Mapping[str, Any]) -> Any:
    """The adapter's loss-scale manager for the options, or None (no loss scaling)."""
    scale = loss_scale(options, wanted=precision_mode(options) in FP16_MODES)
    if scale is None:
        return None
    from npu_bridge.estimator.npu import npu_loss_scale_manager as managers

    if scale == "dynamic":
        return managers.ExponentialUpdateLossScaleManager(**dynamic_loss_scale(options))
    return managers.FixedLossScaleManager(loss_scale=float(scale))


def graph_optimizer(optimizer: Any, options: Mapping[str, Any], size: int) -> tuple[Any, int]:
    """BERT's TF 1.15 order (ModelZoo optimization.py): NPUDistributedOptimizer over the
    optimizer when there are several ranks, then NPULossScaleOptimizer over that (its overflow
    status summed over the ranks: is_distributed); returns it and the ranks it averages over."""
    if size > 1:
        from npu_bridge.estimator.npu.npu_optimizer import NPUDistributedOptimizer

        optimizer = NPUDistributedOptimizer(optimizer)
    manager = loss_scale_manager(options)
    if manager is not None:
        from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer

        optimizer = NPULossScaleOptimizer(optimizer, manager, is_distributed=size > 1)
    return optimizer, max(size, 1)


def all_reduce(values: list) -> list:
    """Sum ``values`` over the ranks (HCCL allreduce, dense tensors)."""
    from npu_bridge.hccl import hccl_ops

    from harness.tfcompat import tf

    # A scalar goes as a [1] tensor (the shape of the adapter's own overflow-status
    # allreduce); the tests' file-based HCCL fake cannot exchange 0-d values (reported).
    return [tf.reshape(hccl_ops.allreduce(tf.reshape(value, [-1]), "sum"), tf.shape(value))
            if value.shape.ndims == 0 else hccl_ops.allreduce(value, "sum") for value in values]


def broadcast(variables: list) -> Any:
    """The op that sets ``variables`` to rank 0's: ``hccl_ops.broadcast`` then assign, what
    the adapter's ``broadcast_global_variables`` does for the trainable variables."""
    from npu_bridge.hccl import hccl_ops

    from harness.tfcompat import tf

    variables = list(variables)
    values = hccl_ops.broadcast(tensor=variables, root_rank=0)
    return tf.group(*[tf.compat.v1.assign(v, value) for v, value in zip(variables, values)],
                    name="zoobench_broadcast")


def device_loop(session: Any, train_op: Any, steps: int) -> Any:
    """The IterationOp the device runs ``steps`` times per ``session.run`` (``train_op`` itself
    for 1); loads the loop variables through ``session``."""
    from npu_bridge.estimator.npu import util

    return util.set_iteration_per_loop(session, train_op, int(steps))

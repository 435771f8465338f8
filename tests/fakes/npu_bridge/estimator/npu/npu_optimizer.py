"""``NPUDistributedOptimizer``, ``npu_distributed_optimizer_wrapper``, ``allreduce``, ``npu_allreduce``.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_optimizer.py (master
085a7b2e):

* ``allreduce(tensor, average=True)``: hccl allreduce "sum", divided by ``NPUBasics("").size()``
  (the job info: needs JOB_ID in the environment, else AttributeError); IndexedSlices are
  all-gathered (values and indices) instead, values divided by the size.
* ``NPUDistributedOptimizer(optimizer, is_weight_update_sharding=False, name=None)``, a
  tf.compat.v1.train.Optimizer named "Distributed<Inner>": ``compute_gradients`` is the inner
  one's, then, when RANK_SIZE (util.get_ranksize) > 1, every gradient averaged over the ranks
  with ``allreduce(grad, True)``; ``apply_gradients`` is the inner one's. Weight-update sharding
  is not modelled (NotImplementedError; the real one first raises ValueError when there are
  fewer gradients than ranks).
* ``npu_distributed_optimizer_wrapper(optimizer)``: the same averaging patched into the given
  optimizer's ``compute_gradients`` / ``get_gradients`` / ``_compute_gradients``, with RANK_SIZE
  read when wrapping.
* ``npu_allreduce(values, reduction="mean", fusion=1, fusion_id=-1, group=...)``: "mean" is a
  sum divided by RANK_SIZE; a list in, a list out.
"""

from __future__ import annotations

import tensorflow as _tf

from ...hccl import hccl_ops
from . import util
from .npu_common import NPUBasics


def _div(x, y):
    return _tf.compat.v1.div(x, y)


def allreduce(tensor, average=True):
    size = NPUBasics("").size()
    if isinstance(tensor, _tf.IndexedSlices):
        values = hccl_ops.allgather(tensor.values, size)
        indices = hccl_ops.allgather(tensor.indices, size)
        rank_size = _tf.cast(size, tensor.values.dtype)
        new_values = _div(values, rank_size) if average else values
        return _tf.IndexedSlices(new_values, indices, dense_shape=tensor.dense_shape)
    summed = hccl_ops.allreduce(tensor, "sum")
    rank_size = _tf.cast(size, dtype=tensor.dtype)
    return _div(summed, rank_size) if average else summed


def _average(gradients, scope):
    out = []
    with _tf.name_scope(scope):
        for grad, var in gradients:
            out.append((allreduce(grad, True) if grad is not None else None, var))
    return out


class NPUDistributedOptimizer(_tf.compat.v1.train.Optimizer):
    def __init__(self, optimizer, is_weight_update_sharding=False, name=None):
        if name is None:
            name = f"Distributed{type(optimizer).__name__}"
        self._optimizer = optimizer
        self._is_weight_update_sharding = is_weight_update_sharding
        super().__init__(name=name, use_locking=False)
        from ... import CALLS

        CALLS.append(("NPUDistributedOptimizer", type(optimizer).__name__,
                      is_weight_update_sharding))

    def compute_gradients(self, *args, **kwargs):
        from ... import CALLS

        gradients = self._optimizer.compute_gradients(*args, **kwargs)
        rank_size = util.get_ranksize()
        if rank_size is None or int(rank_size) <= 1:
            return gradients
        if self._is_weight_update_sharding:
            if int(rank_size) > len(gradients):
                raise ValueError("The number of gradients is less than rank_size, "
                                 "so weight_update_sharding cannot be executed")
            raise NotImplementedError("fake npu_bridge: weight update sharding is not modelled")
        CALLS.append(("NPUDistributedOptimizer.compute_gradients", len(gradients), int(rank_size)))
        return _average(gradients, self._name + "_Allreduce")

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        rank_size = util.get_ranksize()
        if rank_size is not None and int(rank_size) > 1 and self._is_weight_update_sharding:
            raise NotImplementedError("fake npu_bridge: weight update sharding is not modelled")
        return self._optimizer.apply_gradients(grads_and_vars, global_step, name)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._optimizer.variables(*args, **kwargs)


def npu_distributed_optimizer_wrapper(optimizer):
    from ... import CALLS

    if isinstance(optimizer, str):
        optimizer = _tf.keras.optimizers.get(optimizer)
    rank_size = util.get_ranksize()
    CALLS.append(("npu_distributed_optimizer_wrapper", type(optimizer).__name__, rank_size))
    single = rank_size is None or int(rank_size) <= 1
    for attr, scope, pairs in (
            ("compute_gradients", "Npu_Distributed_optimizer_Allreduce", True),
            ("get_gradients", "Npu_Distributed_optimizer_get_grads_Allreduce", False),
            ("_compute_gradients", "Npu_Distributed_optimizer_compute_grads_Allreduce", True)):
        original = getattr(optimizer, attr, None)
        if original is None:
            continue

        def patched(*args, _original=original, _scope=scope, _pairs=pairs, **kwargs):
            result = _original(*args, **kwargs)
            if single:
                return result
            if _pairs:
                return _average(result, _scope)
            with _tf.name_scope(_scope):
                return [allreduce(g, True) if g is not None else None for g in result]

        setattr(optimizer, attr, patched)
    return optimizer


def npu_allreduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group"):
    is_list = isinstance(values, (list, tuple))
    items = list(values) if is_list else [values]
    mean = reduction == "mean"
    op_reduction = "sum" if mean else reduction
    size = int(util.get_ranksize())
    out = []
    for value in items:
        if isinstance(value, _tf.IndexedSlices):
            gathered = hccl_ops.allgather(value.values, size, group)
            indices = hccl_ops.allgather(value.indices, size, group)
            rank_size = _tf.cast(size, value.values.dtype)
            out.append(_tf.IndexedSlices(_div(gathered, rank_size) if mean else gathered, indices,
                                         dense_shape=value.dense_shape))
        else:
            summed = hccl_ops.allreduce(value, op_reduction, fusion, fusion_id, group)
            out.append(_div(summed, _tf.cast(size, dtype=value.dtype)) if mean else summed)
    return out if is_list else out[0]

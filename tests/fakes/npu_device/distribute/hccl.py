"""``all_reduce``, ``broadcast``, ``shard_and_rebatch_dataset`` over the fake HCCL.

Real: Ascend/tensorflow tf_adapter_2.x/python/npu_device/distribute/hccl.py (master 085a7b2e)
and the HcomAllReduce/HcomBroadcast op definitions (tf_adapter/ops/hccl/hccl_ops.cc).

* ``all_reduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group")``:
  values unchanged (and not recorded) unless ``global_npu_ctx()`` is a cluster worker (opened,
  ``as_default()`` called, RANK_SIZE > 1). A list in, a list out; None entries stay None.
  "mean" is a sum times 1/RANK_SIZE (integers: divided); other reductions go to the op as
  they are, which accepts only min/max/prod/sum (ValueError) and int8/16/32/64, float16/32,
  bfloat16 (TypeError: no float64). Recorded as ("all_reduce", reduction, n, fusion, group).
* ``broadcast(values, root_rank=0, fusion=2, fusion_id=0, group=...)``: assigns root's value
  to every variable (so values must be tf.Variables: a tensor has no ``assign``); returns
  None; skipped outside a cluster. Recorded as ("broadcast", root_rank, n, fusion, group).
* ``shard_and_rebatch_dataset(dataset, global_bs)``: (dataset, global_bs) outside a cluster;
  else ValueError unless global_bs divides by RANK_SIZE, and (dataset.shard(N, rank), bs // N).
"""

from __future__ import annotations

from npu_device import _hccl
from npu_device.npu_device import CALLS, global_npu_ctx


def _worker():
    ctx = global_npu_ctx()
    return ctx if ctx is not None and ctx.is_cluster_worker() else None


def shard_and_rebatch_dataset(dataset, global_bs):
    ctx = global_npu_ctx()
    if ctx is None or ctx.workers_num <= 1:
        return dataset, global_bs
    if global_bs % ctx.workers_num != 0:
        raise ValueError(f"Batch size must be divisible by num npus: {ctx.workers_num}")
    CALLS.append(("shard_and_rebatch_dataset", global_bs, ctx.workers_num, ctx.worker_id))
    return dataset.shard(ctx.workers_num, ctx.worker_id), int(int(global_bs) / ctx.workers_num)


def all_reduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group"):
    ctx = _worker()
    if ctx is None:
        return values
    import tensorflow as tf

    is_list = isinstance(values, (list, tuple))
    items = list(values) if is_list else [values]
    CALLS.append(("all_reduce", reduction, len(items), fusion, group))
    hccl = _hccl.load()
    op_reduction = "sum" if reduction == "mean" else reduction
    out = []
    for value in items:
        if value is None:
            out.append(None)
            continue
        reduced = hccl.tf_all_reduce(tf, value, op_reduction, ctx.workers_num, ctx.worker_id)
        if reduction == "mean":
            if reduced.dtype in (tf.float16, tf.float32, tf.float64):
                reduced = reduced * tf.cast(1.0 / float(ctx.workers_num), reduced.dtype)
            else:
                reduced = tf.divide(reduced, tf.cast(ctx.workers_num, reduced.dtype))
        out.append(reduced)
    return out if is_list else out[0]


def broadcast(values, root_rank=0, fusion=2, fusion_id=0, group="hccl_world_group"):
    ctx = _worker()
    if ctx is None:
        return None
    import tensorflow as tf

    items = list(values) if isinstance(values, (list, tuple)) else [values]
    CALLS.append(("broadcast", root_rank, len(items), fusion, group))
    hccl = _hccl.load()
    for value in items:
        value.assign(hccl.tf_broadcast(tf, [value], root_rank, ctx.workers_num,
                                       ctx.worker_id)[0])
    return None


def npu_distributed_keras_optimizer_wrapper(optimizer, reduce_reduction="mean", fusion=1,
                                            fusion_id=-1, group="hccl_world_group"):
    """Wraps ``optimizer.apply_gradients`` to all-reduce the gradients first (the real one
    also resolves a name through tf.keras.optimizers.get)."""
    original = optimizer.apply_gradients

    def apply_gradients(grads_and_vars, *args, **kwargs):
        grads, variables = zip(*grads_and_vars)
        reduced = all_reduce(list(grads), reduce_reduction, fusion, fusion_id, group)
        return original(zip(reduced, variables), *args, **kwargs)

    optimizer.apply_gradients = apply_gradients
    return optimizer

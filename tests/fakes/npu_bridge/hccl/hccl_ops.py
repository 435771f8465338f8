"""``npu_bridge.hccl.hccl_ops``: HCCL collectives as graph ops, played by the file-based fake.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/hccl/hccl_ops.py and the op definitions in
tf_adapter/ops/hccl/hccl_ops.cc (master 085a7b2e):

* ``allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group")``: reduction
  one of min/max/prod/sum (ValueError; there is no "mean"), dtype int8/16/32/64, float16/32 or
  bfloat16 (TypeError: no float64). A list argument is packed into one tensor.
* ``allgather(tensor, rank_size, group=..., fusion=0, fusion_id=-1)``: concatenated on axis 0.
* ``broadcast(tensor, root_rank, fusion=2, fusion_id=0, group=...)``: ``tensor`` is a LIST of
  tensors, the result a list.
* ``reduce(tensor, reduction, root_rank, fusion=0, fusion_id=-1, group=...)``: the fake gives the
  reduction on every rank (what non-root ranks get from real HCCL was not found).

The world is RANK_SIZE processes (the fake's rank is RANK_ID; real HCCL reads the rank table).
Each call is recorded as ("hccl.<op>", ...).
"""

from __future__ import annotations

import os

from .. import _hccl


def _world() -> tuple:
    size = os.getenv("RANK_SIZE", "1")
    size = int(size) if size.isdigit() and int(size) > 0 else 1
    return size, int(os.getenv("RANK_ID", "0") or 0) if size > 1 else 0


def _record(*item) -> None:
    from .. import CALLS

    CALLS.append(item)


def allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
    import tensorflow as tf

    size, rank = _world()
    _record("hccl.allreduce", reduction, fusion, group)
    return _hccl.load().tf_all_reduce(tf, tensor, reduction, size, rank)


def allgather(tensor, rank_size, group="hccl_world_group", fusion=0, fusion_id=-1):
    import tensorflow as tf

    size, rank = _world()
    _record("hccl.allgather", rank_size, group)
    return _hccl.load().tf_all_gather(tf, tensor, rank_size, size, rank)


def broadcast(tensor, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
    import tensorflow as tf

    size, rank = _world()
    _record("hccl.broadcast", root_rank, len(tensor), group)
    return _hccl.load().tf_broadcast(tf, list(tensor), root_rank, size, rank)


def reduce(tensor, reduction, root_rank, fusion=0, fusion_id=-1, group="hccl_world_group"):
    import tensorflow as tf

    size, rank = _world()
    _record("hccl.reduce", reduction, root_rank, group)
    hccl = _hccl.load()
    hccl.check_all_reduce(tf, tf.convert_to_tensor(tensor), reduction, "HcomReduce")
    return hccl.tf_all_reduce(tf, tensor, reduction, size, rank)

"""``npu_device.distribute``: all_reduce over the HCCL world group."""

from __future__ import annotations


def all_reduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group"):
    """Like the real one: the values unchanged unless this process is a cluster worker. A
    worker's peers are played as ranks that computed the same values (sum = workers x value)."""
    import npu_device

    ctx = npu_device.global_npu_ctx()
    if ctx is None or not ctx.is_cluster_worker():
        return values
    single = not isinstance(values, (list, tuple))
    items = [values] if single else list(values)
    npu_device.CALLS.append(("all_reduce", reduction, len(items), fusion, group))
    factor = ctx.workers_num if reduction == "sum" else 1
    out = [None if v is None else v * factor for v in items]
    return out[0] if single else out

"""HCCL played through files: the collectives of the npu_device and npu_bridge fakes.

Real HCCL (``HcomAllReduce`` / ``HcomBroadcast`` / ``HcomAllGather``, op definitions in
Ascend/tensorflow ``tf_adapter/ops/hccl/hccl_ops.cc``, shared by both adapters) moves tensors
between the RANK_SIZE processes of a job. Here every rank writes its inputs to a file in a
folder all ranks share and reads its peers' files back, so a multi-process run really
exchanges values and tests can check exact multi-rank math.

* ``FAKE_HCCL_DIR`` set: the exchange folder. Each job gets a subfolder keyed by the rank
  table's path and mtime (the launcher writes a new table per run), so runs never read each
  other's files. A rank waits ``FAKE_HCCL_TIMEOUT`` seconds (default 120) for its peers, then
  raises RuntimeError naming the missing rank.
* ``FAKE_HCCL_DIR`` unset: one process plays every rank, its peers "computed the same values"
  (sum = RANK_SIZE x value, mean/max/min = value): enough for single-process contract tests.

Collectives are matched across ranks by the order in which they are built (a process-wide
counter) and, per collective, by how often it has run: the SPMD assumption real HCCL makes
too (every rank issues the same collectives in the same order). A rank that disagrees (other
op, other shapes) gets a RuntimeError, not wrong numbers. In TF 1 graph mode (not inside a
tf.function, which orders stateful ops itself) the fake ops of one graph and control-flow
frame are chained by control dependencies in build order, so a small inter-op thread pool
cannot deadlock ranks that happen to start different collectives first.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time

import numpy as np

ENV_DIR = "FAKE_HCCL_DIR"
ENV_TIMEOUT = "FAKE_HCCL_TIMEOUT"
# HcomAllReduce's attrs (tf_adapter/ops/hccl/hccl_ops.cc): no float64, no 'mean'.
ALL_REDUCE_DTYPES = ("int8", "int16", "int32", "int64", "float16", "float32", "bfloat16")
REDUCTIONS = ("min", "max", "prod", "sum")

_lock = threading.Lock()
_tags = itertools.count()
_runs: dict = {}


def new_tag(kind: str) -> str:
    with _lock:
        return f"{kind}{next(_tags)}"


def _job_dir(size: int) -> str | None:
    base = os.environ.get(ENV_DIR)
    if not base:
        return None
    table = os.environ.get("RANK_TABLE_FILE", "")
    try:
        stamp = os.stat(table).st_mtime_ns if table else 0
    except OSError:
        stamp = 0
    key = f"{os.path.realpath(table) if table else ''}|{stamp}|{size}"
    folder = os.path.join(base, "job-" + hashlib.sha1(key.encode()).hexdigest()[:12])
    os.makedirs(folder, exist_ok=True)
    return folder


def _write(path: str, kind: str, arrays: list) -> None:
    payload = {"kind": np.array(kind)}
    for i, a in enumerate(arrays):
        shape = np.shape(a)  # before ascontiguousarray, which makes a 0-d array 1-d
        a = np.ascontiguousarray(a)
        payload[f"b{i}"] = np.frombuffer(a.tobytes(), dtype=np.uint8)
        payload[f"s{i}"] = np.array(shape, dtype=np.int64)
        payload[f"d{i}"] = np.array(str(a.dtype))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **payload)
    os.replace(tmp, path)  # peers never see a half-written file


def _read(path: str, like: list) -> tuple:
    with np.load(path) as z:
        kind = str(z["kind"])
        count = sum(1 for name in z.files if name.startswith("b"))
        out = []
        for i in range(count):
            dtype = like[i].dtype if i < len(like) and str(like[i].dtype) == str(z[f"d{i}"]) \
                else np.dtype(str(z[f"d{i}"]))
            out.append(np.frombuffer(z[f"b{i}"].tobytes(), dtype=dtype).reshape(z[f"s{i}"]))
    return kind, out


def exchange(kind: str, tag: str, arrays: list, size: int, rank: int) -> list:
    """Every rank's ``arrays`` for this run of collective ``tag``, in rank order."""
    arrays = [np.asarray(a) for a in arrays]
    folder = _job_dir(size)
    if folder is None or size <= 1:
        return [arrays] * size
    with _lock:
        run = _runs[tag] = _runs.get(tag, -1) + 1
    name = f"{tag}.{run}"
    _write(os.path.join(folder, f"{name}.r{rank}.npz"), kind, arrays)
    if run >= 2:  # every peer has finished run - 2 once it wrote run - 1, which we read
        try:
            os.remove(os.path.join(folder, f"{tag}.{run - 2}.r{rank}.npz"))
        except OSError:
            pass
    timeout = float(os.environ.get(ENV_TIMEOUT, "120"))
    deadline = time.monotonic() + timeout
    per_rank = []
    for peer in range(size):
        path = os.path.join(folder, f"{name}.r{peer}.npz")
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake HCCL: rank {rank} waited {timeout:g}s for rank {peer} "
                                   f"at {kind} {name} in {folder} (that rank failed, runs other "
                                   f"collectives, or has every inter-op thread waiting)")
            time.sleep(0.002)
        peer_kind, values = _read(path, arrays)
        shapes = [v.shape for v in values]
        if peer_kind != kind or shapes != [a.shape for a in arrays]:
            raise RuntimeError(f"fake HCCL: ranks out of step at {name}: rank {rank} runs "
                               f"{kind} {[a.shape for a in arrays]}, rank {peer} ran "
                               f"{peer_kind} {shapes}")
        per_rank.append(values)
    return per_rank


def reduce_values(values: list, reduction: str):
    """Fold the ranks' values in rank order (the same order on every rank: equal results)."""
    out = np.array(values[0], copy=True)
    for v in values[1:]:
        if reduction == "sum":
            out = out + v
        elif reduction == "prod":
            out = out * v
        elif reduction == "max":
            out = np.maximum(out, v)
        else:
            out = np.minimum(out, v)
    return out.astype(values[0].dtype, copy=False)


def mirror_reduce(value, reduction: str, size: int):
    """What ``reduce_values`` gives when every rank holds ``value`` (no exchange folder)."""
    return reduce_values([value] * size, reduction)


# --- TensorFlow ops ---------------------------------------------------------------------


def _py_op(tf, fn, inputs: list, dtypes: list) -> list:
    """tf.numpy_function, always as a list (some TF versions unwrap a one-element Tout)."""
    outs = tf.numpy_function(fn, inputs, dtypes)
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def check_all_reduce(tf, tensor, reduction: str, op_name: str = "HcomAllReduce") -> None:
    """The attr checks TF applies to HcomAllReduce: ValueError / TypeError as op_def_library."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Attr 'reduction' of '{op_name}' Op passed string '{reduction}' not "
                         f"in: {', '.join(repr(r) for r in REDUCTIONS)}.")
    if tensor.dtype.base_dtype.name not in ALL_REDUCE_DTYPES:
        raise TypeError(f"Value passed to parameter 'input' has DataType "
                        f"{tensor.dtype.base_dtype.name} not in list of allowed values: "
                        f"{', '.join(ALL_REDUCE_DTYPES)}")


def tf_all_reduce(tf, tensor, reduction: str, size: int, rank: int):
    tensor = tf.convert_to_tensor(tensor)
    check_all_reduce(tf, tensor, reduction)
    tag = new_tag("allreduce")

    def run(value):
        return reduce_values([v[0] for v in exchange("allreduce", tag, [value], size, rank)],
                             reduction)

    (out,) = _py_op(tf, run, [tensor], [tensor.dtype])
    out.set_shape(tensor.shape)
    return out


def tf_broadcast(tf, tensors: list, root_rank: int, size: int, rank: int) -> list:
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return []
    if not 0 <= root_rank < size:
        raise tf.errors.InvalidArgumentError(None, None, f"fake HCCL: root_rank {root_rank} "
                                             f"outside the group of {size} ranks")
    tag = new_tag("broadcast")

    def run(*values):
        return exchange("broadcast", tag, list(values), size, rank)[root_rank]

    outs = _py_op(tf, run, tensors, [t.dtype for t in tensors])
    for out, t in zip(outs, tensors):
        out.set_shape(t.shape)
    return outs


def tf_all_gather(tf, tensor, rank_size: int, size: int, rank: int):
    tensor = tf.convert_to_tensor(tensor)
    if rank_size <= 0:
        raise ValueError("rank_size should be greater than 0.")
    tag = new_tag("allgather")

    def run(value):
        return np.concatenate([v[0] for v in exchange("allgather", tag, [value], size, rank)],
                              axis=0)

    (out,) = _py_op(tf, run, [tensor], [tensor.dtype])
    if tensor.shape.ndims:
        dims = tensor.shape.as_list()
        out.set_shape([None if dims[0] is None else dims[0] * size] + dims[1:])
    return out

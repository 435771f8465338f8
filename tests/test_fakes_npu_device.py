"""The npu_device fake refuses what Ascend's TF 2 adapter refuses, and its HCCL really reduces.

Each case names the adapter behaviour it mirrors (Ascend/tensorflow tf_adapter_2.x, master
085a7b2e; paths under tf_adapter_2.x/python/npu_device/). No harness imports: these run on any
TF 2 (2.6.5 included) and Python 3.7+.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest


def _tensorflow():
    """TensorFlow loaded as the harness loads it when the harness imports here (it reserves the
    logical CPU devices that later tests of this process need, before TF starts); else plain."""
    try:
        from harness import tfcompat

        return tfcompat.tf
    except (ImportError, SyntaxError, TypeError, AttributeError):
        return pytest.importorskip("tensorflow")


tf = _tensorflow()
pytestmark = [pytest.mark.core,
              pytest.mark.skipif(not hasattr(tf, "function") or tf.__version__.startswith("1."),
                                 reason="npu_device is the TF 2 adapter")]

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes")
ENV = ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE", "ASCEND_DEVICE_ID", "DEVICE_ID", "JOB_ID",
       "CM_CHIEF_IP", "CM_CHIEF_PORT", "CM_CHIEF_DEVICE", "CM_WORKER_SIZE", "CM_WORKER_IP",
       "NPU_LOOP_SIZE", "FAKE_HCCL_DIR")


def _forget() -> None:
    checks = sys.modules.get("npu_bridge._session_checks")
    if checks is not None:
        checks.uninstall()
    for name in [m for m in sys.modules if m.split(".")[0] in ("npu_device", "npu_bridge",
                                                                "fake_hccl", "fake_ranks")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def load(monkeypatch):
    """Import the fake afresh (module state is per process, like the adapter's)."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(FAKES)

    def _load(**env):
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        _forget()
        import npu_device

        return npu_device

    yield _load
    _forget()


@pytest.fixture
def run_ranks(monkeypatch):
    """fake_ranks.run_ranks: a snippet as N real processes sharing a fake HCCL folder."""
    monkeypatch.syspath_prepend(FAKES)
    import fake_ranks

    return fake_ranks.run_ranks


def _table(tmp_path) -> str:
    path = tmp_path / "rank_table.json"
    path.write_text('{"status": "completed", "version": "1.0"}')
    return str(path)


# --- global_options(): configs/option_base.py, npu_config.py, dump_config.py ---------------


def test_options_refuse_unknown_names_and_values_outside_their_lists(load):
    options = load().global_options()
    with pytest.raises(ValueError, match="NpuConfig has no option precison_mode, all options"):
        options.precison_mode = "force_fp32"  # NpuBaseConfig.__setattr__: unknown name
    with pytest.raises(ValueError, match=r"'fp16' not in optional list \['force_fp32'"):
        options.precision_mode = "fp16"  # default None: ValueError, whatever the type
    with pytest.raises(ValueError, match="'2' not in optional list"):
        options.graph_run_mode = 2
    with pytest.raises(ValueError, match="NpuDumpConfig has no option path"):
        options.dump_config.path = "/tmp"


def test_options_raise_type_error_for_a_value_of_another_type(load):
    """OptionValue.value: not in the list and not of the default's type -> TypeError."""
    options = load().global_options()
    with pytest.raises(TypeError, match="Expected bool, got str"):
        options.hcom_parallel = "true"
    with pytest.raises(TypeError, match="Expected bool, got str"):
        options.dump_config.enable_dump = "1"
    with pytest.raises(TypeError, match="Expected str, got int"):
        options.dump_config.dump_mode = 5
    with pytest.raises(TypeError, match="Expected int, got str"):
        options.graph_run_mode = "1"
    options.hcom_parallel = 1  # 1 == True: in the list, accepted as the adapter does


def test_options_read_back_as_the_strings_open_hands_the_graph_engine(load):
    options = load().global_options()
    options.precision_mode = "allow_mix_precision"
    options.hcom_parallel = False
    options.dump_config.enable_dump_debug = True  # no dump_path: npu_device does not check
    assert options.precision_mode.value == "allow_mix_precision"  # an OptionValue, not a str
    flat = options.as_dict()
    assert flat["precision_mode"] == "allow_mix_precision"
    assert flat["hcom_parallel"] == "0" and flat["enable_dump_debug"] == "1"
    assert flat["graph_run_mode"] == "1" and flat["dump_debug_mode"] == "all"  # defaults sent
    assert "dump_path" not in flat  # None values are left out
    assert "aic_metrics" in flat["profiling_options"]  # the default profiling options string


# --- open(): npu_device.py ------------------------------------------------------------------


def test_open_takes_the_logical_ascend_device_id_and_never_device_id(load):
    npu = load(ASCEND_DEVICE_ID="3", DEVICE_ID="5")
    handle = npu.open()
    assert handle.name().endswith("NPU:3") and npu.open(3) is handle
    with pytest.raises(RuntimeError, match=r"Failed create npu instance on device 5 as existed "
                                           r"instance on \[3\]"):
        npu.open(5)
    assert npu.global_npu_ctx() is None  # only as_default() sets it
    handle.as_default()
    assert npu.global_npu_ctx() is handle


def test_open_does_not_read_device_id(load):
    assert load(DEVICE_ID="5").open().name().endswith("NPU:0")  # the physical id: not read


def test_open_refuses_ids_that_are_not_ints(load):
    with pytest.raises(ValueError):
        load(ASCEND_DEVICE_ID="npu1").open()  # int(os.getenv("ASCEND_DEVICE_ID"))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        load().open("0")  # the pybind11 Open(..., int device_index, ...)


@pytest.mark.parametrize("env, error, message", [
    ({}, RuntimeError, "CM_CHIEF_IP and RANK_TABLE_FILE are all not be configured."),
    ({"RANK_TABLE_FILE": "T"}, RuntimeError, "You must specify rank id by set env RANK_ID"),
    ({"RANK_TABLE_FILE": "T", "CM_CHIEF_IP": "1.2.3.4", "RANK_ID": "0"}, RuntimeError,
     "CM_CHIEF_IP and RANK_TABLE_FILE cannot be configured at the same time."),
    ({"CM_CHIEF_IP": "1.2.3.4"}, RuntimeError, "specify cm chief port by set env CM_CHIEF_PORT"),
    ({"CM_WORKER_SIZE": "2"}, ValueError, "RANK_SIZE and CM_WORK_SIZE cannot be configured"),
])
def test_open_checks_the_cluster_environment(load, tmp_path, env, error, message):
    env = {k: (_table(tmp_path) if v == "T" else v) for k, v in env.items()}
    npu = load(RANK_SIZE="2", **env)
    with pytest.raises(error, match=message):
        npu.open()


def test_open_as_a_cluster_worker(load, tmp_path):
    npu = load(RANK_SIZE="2", RANK_ID="1", RANK_TABLE_FILE=_table(tmp_path))
    handle = npu.open(1).as_default()
    assert handle.is_cluster_worker() and (handle.workers_num, handle.worker_id) == (2, 1)


@pytest.mark.parametrize("profiling_options, ok", [
    ('{"output": "/tmp/p", "training_trace": "on", "aic_metrics": "PipeUtilization"}', True),
    ('{"output": "/tmp/p", "training_trace": "on", "aic_metrics": "on"}', False),
    ("training_trace:task_trace", False),
])
def test_profiling_options_are_free_text_until_open(load, profiling_options, ok):
    """Assumed graph-engine refusal (the adapter passes the string on): see npu_device.py."""
    npu = load()
    npu.global_options().profiling_config.enable_profiling = True
    npu.global_options().profiling_config.profiling_options = profiling_options  # accepted
    if ok:
        npu.open()
    else:
        with pytest.raises(RuntimeError, match="Failed open npu device 0 : profiling_options"):
            npu.open()


# --- set_npu_loop_size / NPU_LOOP_SIZE: npu_wrapper.cpp, npu_global.cpp ---------------------


@pytest.mark.parametrize("env, size", [("32", 32), (" 8 ", 8), ("0", 1), ("-4", 1), ("x", 1)])
def test_npu_loop_size_is_read_once_at_import(load, env, size):
    npu = load(NPU_LOOP_SIZE=env)
    assert npu.fake_loop_size() == size


def test_set_npu_loop_size_ignores_non_positive_sizes_and_refuses_non_ints(load):
    npu = load()
    npu.set_npu_loop_size(100)
    npu.set_npu_loop_size(0)  # "Npu loop size must be greater than 0" is logged, no exception
    assert npu.fake_loop_size() == 100
    with pytest.raises(TypeError, match="SetNpuLoopSize"):
        npu.set_npu_loop_size(10.0)
    assert [c for c in npu.CALLS if c[0] == "set_npu_loop_size"] == [
        ("set_npu_loop_size", 100), ("set_npu_loop_size", 0)]


# --- distribute: distribute/hccl.py, tf_adapter/ops/hccl/hccl_ops.cc --------------------------


def test_collectives_skip_outside_a_cluster(load):
    npu = load()
    npu.open()  # no as_default(): global_npu_ctx() is None
    value = tf.constant([1.0, 2.0])
    assert npu.distribute.all_reduce([value])[0] is value
    assert npu.distribute.broadcast([tf.Variable(1.0)]) is None
    dataset = tf.data.Dataset.range(8)
    assert npu.distribute.shard_and_rebatch_dataset(dataset, 8) == (dataset, 8)
    assert not [c for c in npu.CALLS if c[0] in ("all_reduce", "broadcast")]


def test_single_process_cluster_plays_peers_with_equal_values(load, tmp_path):
    npu = load(RANK_SIZE="2", RANK_ID="1", RANK_TABLE_FILE=_table(tmp_path))
    npu.open(1).as_default()
    value = tf.constant([1.0, 3.0])
    assert npu.distribute.all_reduce([value], "sum")[0].numpy().tolist() == [2.0, 6.0]
    assert npu.distribute.all_reduce(value).numpy().tolist() == [1.0, 3.0]  # mean, not a list
    assert npu.distribute.all_reduce([None, value], "max")[0] is None
    with pytest.raises(ValueError, match="Batch size must be divisible by num npus: 2"):
        npu.distribute.shard_and_rebatch_dataset(tf.data.Dataset.range(9), 9)
    shard, batch = npu.distribute.shard_and_rebatch_dataset(tf.data.Dataset.range(8), 8)
    assert batch == 4 and [int(x) for x in shard] == [1, 3, 5, 7]


def test_all_reduce_refuses_what_hcom_all_reduce_refuses(load, tmp_path):
    npu = load(RANK_SIZE="2", RANK_ID="0", RANK_TABLE_FILE=_table(tmp_path))
    npu.open(0).as_default()
    with pytest.raises(TypeError, match="DataType float64 not in list of allowed values"):
        npu.distribute.all_reduce([tf.constant([1.0], tf.float64)], "sum")
    with pytest.raises(ValueError, match="Attr 'reduction' of 'HcomAllReduce'"):
        npu.distribute.all_reduce([tf.constant([1.0])], "avg")
    with pytest.raises(AttributeError):
        npu.distribute.broadcast([tf.constant(1.0)])  # value.assign: variables only


# --- train.optimizer.NpuLossScaleOptimizer: train/optimizer/npu_loss_scale_optimizer.py -------


def _keras():
    from npu_device.train.optimizer.npu_loss_scale_optimizer import _keras as pick

    return pick()[1]


@pytest.mark.parametrize("dynamic", [True, False])
def test_loss_scale_optimizer_skips_an_overflowing_step(load, dynamic):
    npu = load()
    npu.open().as_default()
    keras = _keras()
    w = tf.Variable([1.0, 2.0])
    opt = npu.train.optimizer.NpuLossScaleOptimizer(
        keras.optimizers.SGD(0.5), dynamic, None if dynamic else 8.0)
    before = float(opt.loss_scale)

    @tf.function
    def step(g):
        opt.apply_gradients([(g, w)])

    step(tf.constant([float("nan"), 1.0]))
    assert w.numpy().tolist() == [1.0, 2.0] and not bool(opt.last_step_finite.numpy())
    assert int(opt.iterations.numpy()) == 1  # a skipped step still counts
    assert float(opt.loss_scale) == (before / 2 if dynamic else 8.0)
    step(tf.constant([2.0, 2.0]))
    assert w.numpy().tolist() == [0.0, 1.0] and bool(opt.last_step_finite.numpy())
    with pytest.raises(TypeError):
        opt.apply_gradients([(tf.constant([1.0, 1.0]), w)], experimental_aggregate_gradients=False)


def test_loss_scale_optimizer_keeps_keras_checks(load):
    npu = load()
    with pytest.raises(ValueError, match="initial_scale"):
        npu.train.optimizer.NpuLossScaleOptimizer(_keras().optimizers.SGD(0.1), dynamic=False)


# --- two real processes through FAKE_HCCL_DIR; then compat.enable_v1 (it is for good) -------
# compat: _api/compat, npu_device.py enable_v1, compat_v1/upgrade_tf1_compat_tf2.py; the graph
# part also runs the npu_bridge fake on TF 2 (test_fakes_npu_bridge has its own on TF 1.15).

TWO_RANKS = r"""
import json, os, npu_device
import tensorflow as tf
rank = int(os.environ["RANK_ID"])
npu_device.open().as_default()
w = tf.Variable([10.0 * (rank + 1), -1.0])
npu_device.distribute.broadcast([w], root_rank=1)

@tf.function
def reduce(x):
    return npu_device.distribute.all_reduce([x, tf.cast(x, tf.int32)], "sum")

summed, ints = reduce(tf.constant([rank + 1.0, 0.25 * rank]))
mean = npu_device.distribute.all_reduce(tf.constant([2.0 * rank]))
mx = npu_device.distribute.all_reduce([tf.constant([rank])], "max")[0]
again = reduce(tf.constant([1.0, 1.0]))[0]  # the same traced collective, run a second time
out = {"w": w.numpy().tolist(), "sum": summed.numpy().tolist(), "ints": ints.numpy().tolist(),
       "mean": mean.numpy().tolist(), "max": int(mx.numpy()[0]), "again": again.numpy().tolist()}

npu_device.compat.enable_v1()
import npu_device.compat.v1.npu_init as compat
from npu_device.compat.v1 import SessionConfigBuilder
import npu_bridge.npu_init as bridge
v1 = tf.compat.v1
out.update(eager=tf.executing_eagerly(), device=os.environ["ASCEND_DEVICE_ID"],
           compat_lso=hasattr(compat, "NPULossScaleOptimizer"),
           run_config=compat.NPURunConfig.__module__)
builder = SessionConfigBuilder()
builder.parameter_map["enable_dump"].b = True  # and no dump_path
x = v1.placeholder(tf.float32, [])
with v1.Session(config=builder.session_config) as sess:
    try:
        sess.run(x * 2, {x: 1.0})
    except tf.errors.InternalError as exc:
        out["dump_error"] = exc.message
w2 = v1.get_variable("w2", initializer=tf.constant([1.0, 1.0]) * (rank + 1), use_resource=True)
data = tf.constant([2.0, 4.0]) if rank == 0 else tf.constant([6.0, 0.0])
opt = compat.NPUDistributedOptimizer(v1.train.GradientDescentOptimizer(0.5))
train = opt.minimize(tf.reduce_sum(w2 * data))
bad = v1.placeholder(tf.bool, [])
lso = bridge.NPULossScaleOptimizer(v1.train.GradientDescentOptimizer(0.5),
                                   bridge.FixedLossScaleManager(8), is_distributed=True)
skip = lso.minimize(tf.reduce_sum(tf.where(bad, float("nan"), 1.0) * w2), var_list=[w2])
hook = compat.NPUBroadcastGlobalVariablesHook(0, rank)
hook.begin()
with v1.Session(config=compat.npu_config_proto()) as sess:
    sess.run(v1.global_variables_initializer())
    hook.after_create_session(sess, None)
    out["w2_start"] = sess.run(w2).tolist()
    sess.run(train)
    out["w2_trained"] = sess.run(w2).tolist()
    sess.run(skip, {bad: rank == 1})
    out["w2_after_overflow"] = sess.run(w2).tolist()
out["calls"] = sorted({c[0] for c in npu_device.CALLS})
print(json.dumps(out))
"""


def test_two_processes_all_reduce_and_broadcast_through_files(run_ranks, tmp_path):
    results = run_ranks(TWO_RANKS, 2, str(tmp_path))
    for rank, result in enumerate(results):
        assert result["w"] == [20.0, -1.0]  # rank 1's initial value on both ranks
        assert result["sum"] == [3.0, 0.25] and result["ints"] == [3, 0]
        assert result["mean"] == [1.0] and result["max"] == 1
        assert result["again"] == [2.0, 2.0]
        # enable_v1: graph mode, ASCEND_DEVICE_ID = the open device, the TF 1 adapter's checks
        assert result["eager"] is False and result["device"] == str(rank)
        assert result["compat_lso"] is False  # the TF 2 build drops the loss-scale modules
        assert result["run_config"] == "npu_device.compat.v1.estimator.npu.npu_config"
        assert result["dump_error"] == "if use dump function, dump_path must be set."
        # compat NPUDistributedOptimizer: mean gradient ([2, 4] + [6, 0]) / 2 = [4, 2]
        assert result["w2_start"] == [1.0, 1.0]  # rank 0's, broadcast by the hook
        assert result["w2_trained"] == [-1.0, 0.0]
        assert result["w2_after_overflow"] == [-1.0, 0.0]  # rank 1 overflowed: both skipped
        assert {"enable_v1", "NPUDistributedOptimizer", "hccl.allreduce"} <= set(result["calls"])

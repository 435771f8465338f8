"""The npu_bridge fake refuses what Ascend's TF 1.15 adapter refuses, on real graph mode.

Each case names the adapter behaviour it mirrors (Ascend/tensorflow tf_adapter, master 085a7b2e;
Python under tf_adapter/python/npu_bridge/, the session checks in tf_adapter/util/npu_attrs.cc).
No harness imports: these run on TF 1.15 (Python 3.7) and on TF 2's tf.compat.v1.
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
v1 = tf.compat.v1
pytestmark = pytest.mark.core

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes")
ENV = ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE", "JOB_ID", "CM_WORKER_SIZE", "TF_CONFIG",
       "FAKE_HCCL_DIR")


def _forget() -> None:
    checks = sys.modules.get("npu_bridge._session_checks")
    if checks is not None:
        checks.uninstall()
    for name in [m for m in sys.modules if m.split(".")[0] in ("npu_bridge", "npu_device",
                                                                "fake_hccl", "fake_ranks")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def bridge(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(FAKES)
    _forget()
    import npu_bridge.npu_init

    yield npu_bridge
    _forget()


@pytest.fixture
def graph():
    with tf.Graph().as_default() as g:
        yield g


def _npu_config(**params):
    config = v1.ConfigProto()
    custom_op = config.graph_options.rewrite_options.custom_optimizers.add()
    custom_op.name = "NpuOptimizer"
    for key, value in params.items():
        attr = custom_op.parameter_map[key]
        if isinstance(value, bool):
            attr.b = value
        elif isinstance(value, int):
            attr.i = value
        else:
            attr.s = tf.compat.as_bytes(value)
    return config


def _run(config, fetch_fn=lambda: tf.constant(1.0) * 2):
    with v1.Session(config=config) as sess:
        return sess.run(fetch_fn())


def test_the_fake_works_alone_when_only_it_is_importable(tmp_path, monkeypatch):
    """For "only npu_bridge installed" tests: link the package into a folder of its own."""
    from adapter_site import only_adapter

    only_adapter(tmp_path, monkeypatch, "npu_bridge", ENV)
    _forget()
    try:
        import importlib.util

        import npu_bridge.npu_init as init

        assert importlib.util.find_spec("npu_device") is None
        with tf.Graph().as_default():
            out = init.hccl_ops.allreduce(tf.constant([1.0, 2.0]), "sum")  # loads fake_hccl
            with v1.Session() as sess:
                assert sess.run(out).tolist() == [1.0, 2.0]
    finally:
        _forget()


# --- NPURunConfig: estimator/npu/npu_config.py ------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"iterations_per_loop": 0}, ValueError, "iterations_per_loop must be positive, got 0"),
    ({"iterations_per_loop": 10.0}, TypeError, "iterations_per_loop must be int"),
    ({"mix_compile_mode": "no"}, TypeError, '"mix_compile_mode" type must be bool'),
    ({"mix_compile_mode": True, "iterations_per_loop": 10}, ValueError,
     '"iterations_per_loop" must be 1 with "mix_compile_mode" is True'),
    ({"dump_config": {"enable_dump": True}}, ValueError, "`dump_config` must be provided"),
    ({"graph_run_mode": 2}, ValueError, '"graph_run_mode" value must be 0 or 1'),
    ({"horovod_mode": 1}, ValueError, '"horovod_mode" type must be bool'),
    ({"jit_compile": True}, TypeError, "Expected str, got bool"),
    ({"precison_mode": "force_fp32"}, TypeError, "unexpected keyword argument 'precison_mode'"),
])
def test_npu_run_config_refuses(bridge, kwargs, error, message):
    with pytest.raises(error, match=message):
        bridge.npu_init.NPURunConfig(**kwargs)


def test_npu_run_config_does_not_check_precision_mode_or_build_a_session_config(bridge):
    config = bridge.npu_init.NPURunConfig(precision_mode="fp16", iterations_per_loop=100)
    assert config._precision_mode == "fp16" and config.iterations_per_loop == 100
    assert config.session_config is None and config._hcom_parallel is True  # master's default


def test_a_tf_config_cluster_needs_a_parameter_server_strategy(bridge, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    with pytest.raises(ValueError, match='"cluster" and "distribute" must all be set in ps mode'):
        bridge.npu_init.NPURunConfig()


def _params(config) -> list:
    entries = [c for c in config.graph_options.rewrite_options.custom_optimizers
               if c.name == "NpuOptimizer"]
    out = []
    for entry in entries:
        values = {}
        for key in entry.parameter_map:
            attr = entry.parameter_map[key]
            value = getattr(attr, attr.WhichOneof("value"))
            values[key] = value.decode() if isinstance(value, bytes) else value
        out.append(values)
    return out


def test_the_estimator_writes_a_new_npu_optimizer_entry(bridge):
    """npu_estimator.py __load_graph_optimizers: always .add(), never remapping."""
    from npu_bridge.estimator.npu.npu_estimator import load_graph_optimizers

    init = bridge.npu_init
    session_config = init.npu_config_proto(v1.ConfigProto())  # already has an entry
    dump = init.DumpConfig(enable_dump=True, dump_path="/d", dump_step="0|5")
    config = load_graph_optimizers(init.NPURunConfig(
        iterations_per_loop=1000, precision_mode="allow_mix_precision", hcom_parallel=True,
        enable_data_pre_proc=True, session_config=session_config, dump_config=dump))
    first, second = _params(config.session_config)
    assert first == {}
    assert {k: second[k] for k in ("use_off_line", "iterations_per_loop", "hcom_parallel",
                                   "precision_mode", "enable_data_pre_proc", "mix_compile_mode",
                                   "min_group_size", "enable_dump", "dump_path", "dump_step",
                                   "dump_mode", "dump_debug_mode")} == {
        "use_off_line": True, "iterations_per_loop": 1000, "hcom_parallel": True,
        "precision_mode": "allow_mix_precision", "enable_data_pre_proc": True,
        "mix_compile_mode": False, "min_group_size": True, "enable_dump": True,
        "dump_path": "/d", "dump_step": "0|5", "dump_mode": "output", "dump_debug_mode": "all"}
    assert "GradFusionOptimizer" in config.session_config.graph_options.rewrite_options.optimizers


# --- the graph pass's checks at the first sess.run: tf_adapter/util/npu_attrs.cc ------------


@pytest.mark.parametrize("params, error, message", [
    ({"precision_mode": "fp16"}, "InvalidArgumentError", "'fp16' is invalid, it should be one of"),
    ({"enable_dump": True}, "InternalError", "if use dump function, dump_path must be set."),
    ({"enable_dump_debug": True}, "InternalError", "if use dump function, dump_path must be set."),
    ({"enable_dump": True, "dump_path": "/no/such/dir"}, "InternalError", "is not directory"),
    ({"enable_dump": True, "dump_path": ".", "dump_step": "5-3"}, "InternalError",
     "the first step is >= second step"),
    ({"enable_dump": True, "dump_path": ".", "dump_mode": "both"}, "InternalError",
     r"\[LOG\(FATAL\)\] dump mode should be one of"),
    ({"enable_exception_dump": 3}, "InternalError", "enable_exception_dump should be one of"),
    ({"iterations_per_loop": 0}, "InternalError", r"\[LOG\(FATAL\)\] iterator_per_loop"),
])
def test_bad_npu_optimizer_params_fail_the_first_run(bridge, graph, tmp_path, monkeypatch,
                                                     params, error, message):
    monkeypatch.chdir(tmp_path)
    config = _npu_config(**params)
    sess = v1.Session(config=config)  # building the session does not check
    with pytest.raises(getattr(tf.errors, error), match=message):
        sess.run(tf.constant(1.0))
    sess.close()


def test_good_and_absent_npu_optimizer_configs_are_recorded(bridge, graph, tmp_path):
    assert _run(_npu_config(precision_mode="allow_mix_precision", enable_dump=True,
                            dump_path=str(tmp_path))) == 2.0
    assert _run(v1.ConfigProto()) == 2.0
    sessions = [c[1] for c in bridge.CALLS if c[0] == "session"]
    assert sessions[0]["precision_mode"] == "allow_mix_precision" and sessions[1] is None


# --- util.set_iteration_per_loop: estimator/npu/util.py -------------------------------------


def _train_op():
    step = v1.train.get_or_create_global_step()
    return v1.assign_add(step, 1).op, step


def test_set_iteration_per_loop_checks_its_arguments(bridge, graph):
    util = bridge.npu_init.util
    train_op, step = _train_op()
    with v1.Session() as sess:
        with pytest.raises(ValueError, match="The incoming 'train_op' type is 'int64_ref'|"
                                             "The incoming 'train_op' type is 'int64'"):
            util.set_iteration_per_loop(sess, step, 10)
        with pytest.raises(TypeError, match="iterations_per_loop must be int"):
            util.set_iteration_per_loop(sess, train_op, 10.0)
        with pytest.raises(ValueError, match="iterations_per_loop must be positive, got 0"):
            util.set_iteration_per_loop(sess, train_op, 0)
        assert util.set_iteration_per_loop(sess, train_op, 1) is train_op  # no variables
    assert not v1.local_variables()


def test_the_iteration_op_runs_the_step_iterations_per_loop_times(bridge, graph):
    util = bridge.npu_init.util
    train_op, step = _train_op()
    config = _npu_config(iterations_per_loop=5, enable_data_pre_proc=True)
    with v1.Session(config=config) as sess:
        sess.run(v1.global_variables_initializer())
        looped = util.set_iteration_per_loop(sess, train_op, 5)
        assert looped.name == "IterationOp" and looped is not train_op
        loop_var = [v for v in v1.local_variables() if "iterations_per_loop" in v.name][0]
        assert sess.run(loop_var) == 4  # iterations_per_loop - 1
        sess.run(looped)
        assert sess.run(step) == 5  # the device ran the step 5 times
        sess.run(train_op)  # the step itself, outside the loop op: once
        assert sess.run(step) == 6
    assert ("set_iteration_per_loop", 5, train_op.name) in bridge.CALLS


def test_set_iteration_per_loop_needs_an_unfinalized_graph_and_the_same_n(bridge, graph):
    util = bridge.npu_init.util
    train_op, _step = _train_op()
    with v1.Session(config=_npu_config(iterations_per_loop=4)) as sess:
        sess.run(v1.global_variables_initializer())
        looped = util.set_iteration_per_loop(sess, train_op, 8)
        with pytest.raises(tf.errors.InvalidArgumentError, match="iterations_per_loop 4"):
            sess.run(looped)  # assumed refusal: 8 steps built, 4 in the config
        graph.finalize()
        with pytest.raises(RuntimeError, match="finalized"):
            util.set_iteration_per_loop(sess, train_op, 2)


# --- loss scaling: npu_loss_scale_manager.py, npu_loss_scale_optimizer.py --------------------


def test_loss_scale_managers(bridge, graph):
    init = bridge.npu_init
    with pytest.raises(ValueError, match="loss scale must be at least 1."):
        init.FixedLossScaleManager(0.5)
    fixed = init.FixedLossScaleManager(1024, enable_overflow_check=False)
    assert fixed.get_enable_overflow_check() is False
    manager = init.ExponentialUpdateLossScaleManager(init_loss_scale=2 ** 10,
                                                     incr_every_n_steps=2,
                                                     decr_every_n_nan_or_inf=2)
    finite = v1.placeholder(tf.bool, [])
    update = manager.update_loss_scale(finite)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        scales = []
        for ok in (True, True, False, True, False, False):
            sess.run(update, {finite: ok})
            scales.append(float(sess.run(manager.get_loss_scale())))
    # good, good -> x2 (counters reset); bad: bad 1, good 0; good: good 1 (bad stays 1);
    # bad: bad 2 -> x0.8 (reset); bad: bad 1
    assert scales == [1024.0, 2048.0, 2048.0, 2048.0, pytest.approx(1638.4),
                      pytest.approx(1638.4)]


def _scaled_training(init, manager, grad_value, is_distributed=False):
    w = v1.get_variable("w", initializer=tf.constant([1.0, 2.0]), use_resource=True)
    x = v1.placeholder(tf.float32, [2])
    step = v1.train.get_or_create_global_step()
    opt = init.NPULossScaleOptimizer(v1.train.GradientDescentOptimizer(0.5), manager,
                                     is_distributed=is_distributed)
    grads = opt.compute_gradients(tf.reduce_sum(w * x), var_list=[w])
    train = opt.apply_gradients(grads, global_step=step)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        g = sess.run(grads[0][0], {x: grad_value})
        sess.run(train, {x: grad_value})
        return g, sess.run(w).tolist(), int(sess.run(step))


def test_loss_scale_optimizer_unscales_and_skips_overflow(bridge, graph):
    init = bridge.npu_init
    grad, w, step = _scaled_training(init, init.FixedLossScaleManager(1024), [2.0, 4.0])
    assert grad.tolist() == [2.0, 4.0] and w == [0.0, 0.0] and step == 1
    with tf.Graph().as_default():
        _grad, w, step = _scaled_training(init, init.FixedLossScaleManager(1024),
                                          [float("inf"), 1.0])
        assert w == [1.0, 2.0] and step == 0  # skipped: no update, global_step not advanced
    with tf.Graph().as_default():
        _grad, w, step = _scaled_training(
            init, init.FixedLossScaleManager(1024, enable_overflow_check=False), [1.0, 1.0])
        assert w == [0.5, 1.5] and step == 1


# --- NPUDistributedOptimizer and hccl_ops: npu_optimizer.py, hccl/hccl_ops.py, npu_common.py -


def test_distributed_optimizer_is_the_inner_one_on_one_rank(bridge, graph):
    w = v1.get_variable("w", initializer=tf.constant([1.0]), use_resource=True)
    opt = bridge.npu_init.NPUDistributedOptimizer(v1.train.GradientDescentOptimizer(0.1))
    assert opt.get_name() == "DistributedGradientDescentOptimizer"
    opt.compute_gradients(tf.reduce_sum(w * 3.0))
    assert not [c for c in bridge.CALLS if c[0].startswith("hccl.")]


def test_distributed_optimizer_needs_job_id_for_its_rank_size(bridge, graph, monkeypatch):
    monkeypatch.setenv("RANK_SIZE", "2")
    w = v1.get_variable("w", initializer=tf.constant([1.0]), use_resource=True)
    opt = bridge.npu_init.NPUDistributedOptimizer(v1.train.GradientDescentOptimizer(0.1))
    with pytest.raises(AttributeError, match="_rank_size"):  # NPUBasics("").jobinfo is None
        opt.compute_gradients(tf.reduce_sum(w * 3.0))


def test_hccl_allreduce_refuses_mean_and_float64(bridge, graph):
    hccl_ops = bridge.npu_init.hccl_ops
    with pytest.raises(ValueError, match="Attr 'reduction' of 'HcomAllReduce' Op passed string "
                                         "'mean'"):
        hccl_ops.allreduce(tf.constant([1.0]), "mean")
    with pytest.raises(TypeError, match="DataType float64"):
        hccl_ops.allreduce(tf.constant([1.0], tf.float64), "sum")


TWO_RANKS = r"""
import json, os
import tensorflow as tf
from npu_bridge.npu_init import *
v1 = tf.compat.v1
rank = int(os.environ["RANK_ID"])
with tf.Graph().as_default():
    w = v1.get_variable("w", initializer=tf.constant([1.0, 1.0]) * (rank + 1), use_resource=True)
    x = tf.constant([2.0, 4.0]) if rank == 0 else tf.constant([6.0, 0.0])
    step = v1.train.get_or_create_global_step()
    loss = tf.reduce_sum(w * x)
    opt = NPUDistributedOptimizer(v1.train.GradientDescentOptimizer(0.5))
    train = opt.minimize(loss, global_step=step)
    bad = v1.placeholder(tf.bool, [])
    y = tf.where(bad, float("nan"), 1.0) * w
    lso = NPULossScaleOptimizer(v1.train.GradientDescentOptimizer(0.5),
                                FixedLossScaleManager(8), is_distributed=True)
    skip = lso.minimize(tf.reduce_sum(y), var_list=[w])
    hook = NPUBroadcastGlobalVariablesHook(0, rank)
    hook.begin()
    with v1.Session(config=npu_config_proto()) as sess:
        sess.run(v1.global_variables_initializer())
        hook.after_create_session(sess, None)
        start = sess.run(w).tolist()
        sess.run(train)
        trained = sess.run(w).tolist()
        sess.run(skip, {bad: rank == 1})
        after_overflow = sess.run(w).tolist()
print(json.dumps({"start": start, "trained": trained, "after_overflow": after_overflow}))
"""


@pytest.mark.skipif(not tf.__version__.startswith("1."),
                    reason="on TF 2 test_fakes_npu_device's two-rank run covers this (one "
                           "TensorFlow start per rank instead of two)")
def test_two_processes_average_gradients_and_agree_on_overflow(bridge, tmp_path):
    import fake_ranks

    results = fake_ranks.run_ranks(TWO_RANKS, 2, str(tmp_path))
    for result in results:
        assert result["start"] == [1.0, 1.0]  # rank 0's initial weights, broadcast
        # mean gradient ([2, 4] + [6, 0]) / 2 = [4, 2]; w = 1 - 0.5 * [4, 2]
        assert result["trained"] == [-1.0, 0.0]
        assert result["after_overflow"] == [-1.0, 0.0]  # rank 1 overflowed: both skipped

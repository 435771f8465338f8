"""The npu backend through npu_bridge (Ascend's TF 1.15 adapter) and the graph engine, against
the fake npu_bridge (tests/fakes; it checks session configs, the loop and the optimizers as the
adapter's source does, and records every call). Only npu_bridge is importable here, as in the
seed's TF 1.15 docker image; these run on TF 1.15 (Python 3.7) and on TF 2's tf.compat.v1."""

from __future__ import annotations

import importlib
import json
import os
import sys
from types import MappingProxyType

import pytest

from harness.case import Case
from harness.errors import BenchError
from harness.testing import write_case

pytestmark = pytest.mark.core

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_VARS = ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE", "ASCEND_DEVICE_ID", "DEVICE_ID",
               "JOB_ID", "FAKE_HCCL_DIR")


def _forget() -> None:
    checks = sys.modules.get("npu_bridge._session_checks")
    if checks is not None:
        checks.uninstall()  # plain TensorFlow sessions for the tests after these
    for name in [m for m in sys.modules
                 if m.split(".")[0] in ("npu_bridge", "npu_device", "fake_hccl")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def bridge(tmp_path, monkeypatch):
    """The fake npu_bridge, linked into a folder of its own: the only Ascend adapter."""
    from adapter_site import only_adapter

    only_adapter(tmp_path, monkeypatch, "npu_bridge", LAUNCH_VARS)
    _forget()
    import npu_bridge

    assert importlib.util.find_spec("npu_device") is None
    yield npu_bridge
    _forget()


def _records(fake, kind: str) -> list:
    return [call for call in fake.CALLS if call[0] == kind]


def _sessions(fake) -> list:
    """parameter_maps of the sessions that ran with an NpuOptimizer config."""
    return [call[1] for call in _records(fake, "session") if call[1] is not None]


def _case(**npu) -> Case:
    return Case(name="c", model="tiny_mlp", device="npu", precision="mixed",
                npu=MappingProxyType(npu), source="cases/c.yaml")


def test_bench_run_device_npu_with_only_npu_bridge_runs(bridge, bench_cli, tmp_path,
                                                         tiny_case):
    tiny_case.update(device="auto", precision="mixed",
                     train={"steps": 30, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--device", "npu", "--out", str(tmp_path / "r"),
                       "--plugin", "tiny_model")
    assert result.exit_code == 0, result.stderr
    (folder,) = os.listdir(tmp_path / "r")
    report = json.load(open(tmp_path / "r" / folder / "report.json"))
    assert report["status"] == "ok"
    assert report["environment"]["device"]["type"] == "npu"
    assert report["device_options"]["adapter"] == "npu_bridge"
    (run,) = report["results"]
    assert run["engine"] == "graph"
    assert run["loss"]["last"] < run["loss"]["first"] and run["accuracy"]["accuracy"] > 0.5
    # the training session ran with the adapter's NpuOptimizer config (the fake checked it)
    params = _sessions(bridge)[0]
    assert params["use_off_line"] is True and params["enable_data_pre_proc"] is True
    assert params["precision_mode"] == "allow_mix_precision"
    # train.steps_per_loop: the npu default (log_every), one device loop per log line
    assert report["case"]["train"]["steps_per_loop"] == 5
    assert params["iterations_per_loop"] == 5 and params["session_device_id"] == 0
    assert [c[1] for c in _records(bridge, "set_iteration_per_loop")] == [5]
    assert [(i["step"], i["steps"]) for i in run["throughput"]["intervals"]] == [
        (10, 5), (15, 5), (20, 5), (25, 5), (30, 5)]
    assert run["time"]["first_loop_s"] > 0 and run["time"]["measured_s"] > 0
    # mixed precision: the default dynamic scale, through the adapter's own optimizer
    assert _records(bridge, "ExponentialUpdateLossScaleManager") == [
        ("ExponentialUpdateLossScaleManager", 2.0**32, 1000, 2, 2.0, 0.5)]
    assert _records(bridge, "NPULossScaleOptimizer") == [
        ("NPULossScaleOptimizer", "KerasAsTrainOptimizer", "ExponentialUpdateLossScaleManager",
         False)]
    assert not _records(bridge, "NPUDistributedOptimizer")  # one rank


def test_engine_eager_with_only_npu_bridge_is_bad_input(bridge, bench_cli, tmp_path, tiny_case):
    path = write_case(tmp_path, {**tiny_case, "device": "npu", "engine": "eager"})
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"bench: error: {path}: engine: eager cannot run: npu runs through npu_bridge (the "
        f"TF 1.15 adapter), in graph sessions only; use graph or auto")
    assert not (tmp_path / "r").exists()


def test_steps_that_end_inside_a_device_loop_are_bad_input(bridge, bench_cli, tmp_path,
                                                           tiny_case):
    tiny_case.update(device="npu", train={"steps": 22, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    assert result.exit_code == 2 and not (tmp_path / "r").exists()
    assert result.stderr.strip() == (
        f"bench: error: {path}: train.steps: must be a multiple of train.steps_per_loop (5) "
        f"here: npu_bridge's device loop runs exactly iterations_per_loop steps per session run")


def test_session_config_is_the_sess_run_recipe(bridge, tmp_path):
    from harness.devices import npu_bridge as backend
    from harness.tfcompat import tf

    dumps = tmp_path / "dump"
    dumps.mkdir()
    options = {"precision_mode": "allow_fp32_to_fp16", "hcom_parallel": True,
               "enable_dump": True, "dump_path": str(dumps), "dump_step": "0|5",
               "dump_mode": "all", "profiling": True, "profiling_options": "training_trace",
               "iterations_per_loop": 1000}
    config = backend.session_config(options, 8, 3)
    rewrite = config.graph_options.rewrite_options
    assert rewrite.remapping == rewrite.OFF and config.allow_soft_placement
    (custom,) = [c for c in rewrite.custom_optimizers]
    assert custom.name == "NpuOptimizer"
    with tf.Graph().as_default():
        with tf.compat.v1.Session(config=config) as session:
            session.run(tf.constant(1.0) + 1.0)  # the adapter checks the config at first run
    (params,) = _sessions(bridge)
    assert {k: v for k, v in params.items() if k != "_entries"} == {
        "use_off_line": True, "precision_mode": "allow_fp32_to_fp16",
        "iterations_per_loop": 8,  # the engine's loop, not the option's 1000
        "hcom_parallel": True, "enable_data_pre_proc": True, "session_device_id": 3,
        "enable_dump": True, "enable_dump_debug": False, "dump_path": str(dumps),
        "dump_step": "0|5", "dump_mode": "all", "profiling_mode": True,
        "profiling_options": params["profiling_options"]}
    assert json.loads(params["profiling_options"])["training_trace"] == "on"


def _tiny_spec(tf, keras, features=8):
    from harness.context import ModelSpec

    inputs = keras.Input((features,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, "relu")(inputs)))
    reduction = getattr(keras.losses, "Reduction", None) or tf.compat.v2.keras.losses.Reduction
    xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction.NONE)
    sgd = getattr(keras.optimizers, "legacy", keras.optimizers).SGD(0.1)
    return ModelSpec(model, xent, sgd)


def _tiny_dataset(tf, features=8):
    import numpy as np

    x = np.random.RandomState(0).normal(size=(256, features)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32, drop_remainder=True)


def test_the_device_loop_is_set_iteration_per_loop_with_the_loops_n(bridge):
    from harness.devices.npu import NpuBackend
    from harness.run.graph_engine import GraphEngine
    from harness.tfcompat import keras, tf

    backend = NpuBackend()
    backend.prepare(_case(), 1, {"precision": "mixed", "loss_scale": 1024})
    with tf.Graph().as_default():
        spec = _tiny_spec(tf, keras)
        engine = GraphEngine(tf.distribute.get_strategy(), spec, _tiny_dataset(tf), 32,
                             backend, steps_per_loop=4, capacity=8)
        first, second = engine.launch(4), engine.launch(4)
        losses = engine.wait([first, second])
        steps = engine.session.run(spec.optimizer.iterations)
        with pytest.raises(BenchError, match="train.steps_per_loop: the device loop runs 4"):
            engine.launch(3)
        engine.close()
    (loop_call,) = _records(bridge, "set_iteration_per_loop")
    assert loop_call[1] == 4
    assert _records(bridge, "loop") == [("loop", 4), ("loop", 4)]  # each run: 4 device steps
    assert [p["iterations_per_loop"] for p in _sessions(bridge)] == [4]
    assert steps == 8 and len(losses) == 8 and len(set(losses)) == 8  # every step's own loss
    assert _records(bridge, "FixedLossScaleManager") == [("FixedLossScaleManager", 1024.0, True)]


def test_each_plugin_sets_its_seeds_loss_scale_manager(bridge):
    from harness.devices import npu_bridge as backend
    from harness.plugins import load_plugins
    from harness.run.plan import device_options
    from harness.tfcompat import tf

    plugins = load_plugins()
    managers = {}
    for model in ("resnext50", "bert"):
        case = Case(name=model, model=model, device="npu", precision="mixed",
                    source="cases/x.yaml")
        with tf.Graph().as_default():
            backend.loss_scale_manager(device_options(case, plugins))
        managers[model] = bridge.CALLS[-1]
    # ResNeXt-50's NPURunConfig recipe: static 1024; BERT's optimization.py: dynamic from 2**32,
    # x2 after 1000 finite steps, x0.5 after 2 overflows
    assert managers["resnext50"] == ("FixedLossScaleManager", 1024.0, True)
    assert managers["bert"] == ("ExponentialUpdateLossScaleManager", 2.0**32, 1000, 2, 2.0, 0.5)
    fp32 = Case(name="b", model="bert", device="npu", precision="fp32", source="cases/x.yaml")
    assert backend.loss_scale_manager(device_options(fp32, plugins)) is None


def test_resnext_trains_on_npu_bridge_with_its_static_loss_scale(bridge, bench_run):
    outcome = bench_run({"model": "resnext50", "device": "npu", "precision": "mixed",
                         "batch_size": 4, "train": {"steps": 6, "warmup_steps": 2,
                                                    "log_every": 2},
                         "eval": {"at_end": True},
                         "params": {"image_size": 32, "groups": 4, "width_per_group": 2,
                                    "base_width": 8, "blocks": [1, 1, 1, 1],
                                    "num_classes": 10,
                                    # the fake runs the ops on this CPU, which has no
                                    # grouped-conv gradient (auto picks native on npu)
                                    "grouped_conv": "split"}})
    report = outcome.report
    assert report["status"] == "ok", report["results"][0].get("error")
    assert report["results"][0]["engine"] == "graph" and "top1" in report["results"][0]["accuracy"]
    assert _records(bridge, "FixedLossScaleManager") == [("FixedLossScaleManager", 1024.0, True)]
    (params,) = _sessions(bridge)[:1]
    assert params["hcom_parallel"] is True  # the plugin's configure_npu, as the seed's config


def test_two_ranks_average_through_the_distributed_optimizer(bridge, bench_cli, tmp_path,
                                                             tiny_case, monkeypatch):
    from harness.devices.ranktable import rank_table, write_rank_table

    conf = tmp_path / "hccn.conf"
    conf.write_text("address_0=192.168.1.10\naddress_1=192.168.1.11\n")
    table = write_rank_table(str(tmp_path / "table.json"), rank_table([0, 1], hccn_conf=str(conf)))
    (tmp_path / "hccl").mkdir()
    monkeypatch.setenv("FAKE_HCCL_DIR", str(tmp_path / "hccl"))  # the ranks really exchange
    tiny_case.update(device="npu", precision="mixed", devices=[2],
                     train={"steps": 20, "warmup_steps": 5, "log_every": 5},
                     # each rank starts from other weights: the broadcast must make them rank 0's
                     params={**tiny_case.get("params", {}), "init_seed_per_rank": True})
    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--rank-table", table,
                       "--plugin", "tiny_model", "--plugin", "bridge_calls")
    (folder,) = os.listdir(tmp_path / "r")
    report = json.load(open(tmp_path / "r" / folder / "report.json"))
    (run,) = report["results"]
    assert result.exit_code == 0 and report["status"] == "ok", run.get("error")
    assert run["engine"] == "graph" and run["global_batch_size"] == 64
    digests = run["weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # the ranks stayed in step
    assert run["loss"]["last"] < run["loss"]["first"]
    for rank in (0, 1):
        log = open(tmp_path / "r" / folder / "workers-2" / f"rank{rank}.log").read()
        (line,) = [x for x in log.splitlines() if "BRIDGE_CALLS " in x]
        calls = [tuple(c) for c in json.loads(line.split("BRIDGE_CALLS ", 1)[1])]
        # BERT's TF 1.15 order: the distributed optimizer inside the loss-scale one
        assert ("NPUDistributedOptimizer", "KerasAsTrainOptimizer", False) in calls
        assert ("NPUDistributedOptimizer.compute_gradients", 4, 2) in calls  # 4 grads, 2 ranks
        assert ("NPULossScaleOptimizer", "NPUDistributedOptimizer",
                "ExponentialUpdateLossScaleManager", True) in calls  # overflow summed over ranks
        # rank 0's initial weights on both ranks (kernel and bias of the tiny model's 2 layers)
        assert ("hccl.broadcast", 0, 4, "hccl_world_group") in calls
        (params,) = [c[1] for c in calls if c[0] == "session" and c[1]][:1]
        assert params["session_device_id"] == rank

"""The npu backend against a fake npu_device that records calls (contract tests, no NPU here)."""

from __future__ import annotations

import os
from types import MappingProxyType, SimpleNamespace

import pytest
from engines import tf2_adapter

from harness.case import Case
from harness.devices.npu import NpuBackend
from harness.devices.options import PRECISION_MODES
from harness.errors import BenchError
from harness.plugins import hookimpl
from harness.testing import write_case

pytestmark = pytest.mark.core  # also run on the TF 2.6.5 job (Ascend's TF 2 stack)

HERE = os.path.dirname(os.path.abspath(__file__))


def _case(**npu) -> Case:
    return Case(name="c", model="tiny_mlp", device="npu", npu=MappingProxyType(npu),
                source="cases/c.yaml")


def _sets(fake) -> dict:
    return {call[1]: call[2] for call in fake.CALLS if call[0] == "set"}


def _opens(fake) -> list:
    return [call for call in fake.CALLS if call[0] == "open"]


@pytest.mark.parametrize("mode", PRECISION_MODES[:5])
def test_each_precision_mode_is_set_before_the_device_opens(fake_npu, mode):
    options = {"precision": "fp32", "precision_mode": mode, "hcom_parallel": False}
    NpuBackend().prepare(_case(precision_mode=mode), 1, options)
    assert _sets(fake_npu)["precision_mode"] == mode
    assert _sets(fake_npu)["hcom_parallel"] is False
    (open_call,) = _opens(fake_npu)
    # the adapter reads global_options() inside open(): they must be set by then
    assert open_call[3]["precision_mode"] == mode
    assert fake_npu.CALLS[-1] == ("as_default", 0)
    assert options["precision_mode"] == mode and options["npu_device_id"] == 0


@pytest.mark.parametrize("precision, expected", [("mixed", "allow_mix_precision"),
                                                 ("fp32", "force_fp32")])
def test_precision_mode_follows_the_case_when_not_given(fake_npu, precision, expected):
    NpuBackend().prepare(_case(), 1, {"precision": precision})
    assert _sets(fake_npu)["precision_mode"] == expected
    assert "hcom_parallel" not in _sets(fake_npu)  # the adapter's default stays


def test_dump_profiling_and_mixlist_reach_their_sub_configs(fake_npu, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mixlist.json").write_text('{"black-list": {"to-add": ["Softmax"]}}')
    options = {"precision": "mixed", "modify_mixlist": "mixlist.json", "enable_dump": True,
               "dump_path": "dump", "dump_step": "0|5", "dump_mode": "all", "profiling": True,
               "profiling_options": "training_trace:task_trace"}
    NpuBackend().prepare(_case(), 1, options)
    sets = _sets(fake_npu)
    assert sets["modify_mixlist"] == str(tmp_path / "mixlist.json")
    assert sets["dump_config.enable_dump"] is True
    assert sets["dump_config.dump_path"] == str(tmp_path / "dump")
    assert (sets["dump_config.dump_step"], sets["dump_config.dump_mode"]) == ("0|5", "all")
    assert sets["profiling_config.enable_profiling"] is True
    assert '"training_trace": "on", "task_trace": "on"' in sets["profiling_config.profiling_options"]
    assert str(tmp_path / "profiling") in sets["profiling_config.profiling_options"]


@pytest.mark.parametrize("env, options, expected", [
    ({}, {}, 0),
    ({"DEVICE_ID": "3"}, {}, 3),
    ({"ASCEND_DEVICE_ID": "5", "DEVICE_ID": "3"}, {}, 5),  # logical id first, as the adapter
    ({}, {"device_ids": [6, 7]}, 6),                         # the ModelZoo CSV's DEVICE_ID
])
def test_open_gets_the_device_id_from_the_environment(fake_npu, monkeypatch, env, options,
                                                      expected):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    NpuBackend().prepare(_case(), 1, {"precision": "fp32", **options})
    assert [call[1] for call in _opens(fake_npu)] == [expected]
    assert fake_npu.CALLS[-1] == ("as_default", expected)


def test_an_adapter_that_rejects_a_mode_names_the_case_key(fake_npu):
    del fake_npu.options.PRECISION_MODES[5:]  # an older adapter: no bf16 modes (re-imported later)
    with pytest.raises(BenchError) as err:
        NpuBackend().prepare(_case(precision_mode="allow_mix_precision_bf16"), 1,
                             {"precision": "mixed", "precision_mode": "allow_mix_precision_bf16"})
    message = str(err.value)
    assert message.startswith("cases/c.yaml: npu.precision_mode: the installed npu_device rejects")
    assert "\n" not in message
    assert not _opens(fake_npu)


def test_several_npus_need_the_process_launcher(fake_npu, monkeypatch):
    with pytest.raises(BenchError, match="use launcher: process"):
        NpuBackend().prepare(_case(), 8, {"precision": "fp32"})
    monkeypatch.setenv("RANK_SIZE", "8")
    with pytest.raises(BenchError, match="RANK_SIZE=8 needs RANK_TABLE_FILE and RANK_ID"):
        NpuBackend().prepare(_case(), 8, {"precision": "fp32"})
    assert not _opens(fake_npu)


@tf2_adapter
def test_loss_scaling_uses_the_adapters_optimizer(fake_npu):
    from harness.tfcompat import keras

    backend = NpuBackend()
    dynamic = backend.wrap_optimizer(keras.optimizers.SGD(0.1), {"precision": "mixed"})
    static = backend.wrap_optimizer(keras.optimizers.SGD(0.1),
                                    {"precision": "fp32", "loss_scale": 1024})
    records = [c for c in fake_npu.CALLS if c[0] == "NpuLossScaleOptimizer"]
    assert records == [("NpuLossScaleOptimizer", "SGD", True, None),
                       ("NpuLossScaleOptimizer", "SGD", False, 1024.0)]
    assert float(static.loss_scale) == 1024.0 and dynamic.dynamic
    # fp32 (force_fp32), bfloat16 modes and loss_scale: none need no scaling
    sgd = keras.optimizers.SGD(0.1)
    assert backend.wrap_optimizer(sgd, {"precision": "fp32"}) is sgd
    assert backend.wrap_optimizer(sgd, {"precision": "mixed",
                                        "precision_mode": "allow_mix_precision_bf16"}) is sgd
    assert backend.wrap_optimizer(sgd, {"precision": "mixed", "loss_scale": "none"}) is sgd
    assert backend.wrap_optimizer(dynamic, {"precision": "mixed"}) is dynamic


def test_peak_flops_from_the_chip_and_precision_mode(fake_npu):
    backend = NpuBackend()
    backend.chip, backend.options = "910A", {"precision": "mixed"}
    assert backend.peak_flops(8, "float32") == pytest.approx(8 * 256e12)
    backend.options = {"precision": "fp32"}  # force_fp32: no float32 figure for the 910A
    assert backend.peak_flops(8, "float32") is None
    backend.chip = "910B3"  # no sourced datasheet figure: the case supplies one
    backend.options = {"precision": "mixed", "peak_tflops": 313}
    assert backend.peak_flops(2, "float32") == pytest.approx(2 * 313e12)


CONTEXTS: list = []


@hookimpl
def build_dataset(case, split, ctx):
    CONTEXTS.append((split, ctx.num_input_pipelines, ctx.input_pipeline_id,
                     ctx.pipeline_batch_size))
    return None  # the tiny model builds it


RECORDER = SimpleNamespace(__name__="ctx_recorder", build_dataset=build_dataset)


@tf2_adapter
def test_auto_picks_npu_and_mixed_precision_trains_with_loss_scaling(fake_npu, bench_run, tiny,
                                                                    tiny_case):
    tiny_case.update(device="auto", precision="mixed",
                     train={"steps": 30, "warmup_steps": 5, "log_every": 5})
    outcome = bench_run(tiny_case, plugins=[tiny])
    report = outcome.report
    assert report["status"] == "ok", report["results"][0].get("error")
    assert report["environment"]["device"]["type"] == "npu"  # auto said which
    assert report["device_options"]["precision_mode"] == "allow_mix_precision"
    assert ("NpuLossScaleOptimizer", "SGD", True, None) in fake_npu.CALLS
    # the runner's train step scales the loss and unscales the gradients through it
    assert ("get_scaled_loss",) in fake_npu.CALLS and ("get_unscaled_gradients",) in fake_npu.CALLS
    assert not [c for c in fake_npu.CALLS if c[0] == "all_reduce"]  # RANK_SIZE unset
    result = report["results"][0]
    assert result["loss"]["last"] < result["loss"]["first"]


@tf2_adapter
def test_rank_size_two_shards_the_data_and_all_reduces(fake_npu, bench_run, tiny, tiny_case,
                                                       tmp_path, monkeypatch):
    table = tmp_path / "rank_table.json"
    table.write_text('{"status": "completed", "version": "1.0"}')
    for var, value in {"RANK_SIZE": "2", "RANK_ID": "1", "DEVICE_ID": "1",
                       "RANK_TABLE_FILE": str(table)}.items():
        monkeypatch.setenv(var, value)
    CONTEXTS.clear()
    tiny_case.update(device="npu", devices=[2], train={"steps": 12, "warmup_steps": 5,
                                                       "log_every": 5})
    report = bench_run(tiny_case, plugins=[tiny, RECORDER]).report
    assert report["status"] == "ok", report["results"][0].get("error")
    assert report["device_options"]["rank_size"] == 2
    assert report["device_options"]["npu_device_id"] == 1
    # half the global batch of 64, the second shard
    assert ("train", 2, 1, 32) in CONTEXTS
    reduces = [c for c in fake_npu.CALLS if c[0] == "all_reduce"]
    # the tiny MLP's 4 variables and the loss, summed (each rank divides by the global batch)
    assert reduces and all(c[1:3] == ("sum", 5) for c in reduces)
    # rank 0's initial weights, the 4 trainable variables once, with the adapter's defaults
    assert [c for c in fake_npu.CALLS if c[0] == "broadcast"] == [
        ("broadcast", 0, 4, 2, "hccl_world_group")]
    names = [c[0] for c in fake_npu.CALLS]
    assert names.index("broadcast") < names.index("set_npu_loop_size")  # before training
    assert report["results"][0]["global_batch_size"] == 64


def _cli_case(tmp_path, tiny_case, **extra) -> str:
    return write_case(tmp_path, {**tiny_case, **extra})


def test_invalid_precision_mode_is_one_line_naming_file_and_key(fake_npu, bench_cli, tmp_path,
                                                                tiny_case):
    path = _cli_case(tmp_path, tiny_case, device="npu", npu={"precision_mode": "fp16"})
    out = tmp_path / "reports"
    result = bench_cli("run", path, "--out", str(out), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"bench: error: {path}: npu.precision_mode: expected one of "
        f"{', '.join(PRECISION_MODES)}, got 'fp16'")
    assert not out.exists()
    assert not _opens(fake_npu)


@tf2_adapter
def test_npu_memory_and_profile_through_npu_smi_and_the_adapter(fake_npu, bench_run, tiny,
                                                                 tiny_case, tmp_path,
                                                                 monkeypatch):
    from fake_tools import install_tool

    # this process listed in npu-smi's process table, as on a host without containers
    text = open(os.path.join(HERE, "data", "ascend", "npu-smi-910B3.txt")).read()
    install_tool(tmp_path, monkeypatch, "npu-smi", text.replace("181721", str(os.getpid())))
    tiny_case.update(device="npu", train={"steps": 20, "warmup_steps": 5, "log_every": 5},
                     profile={"start_step": 11, "steps": 5})
    outcome = bench_run(tiny_case, plugins=[tiny])
    result = outcome.report["results"][0]
    assert result["status"] == "ok", result.get("error")
    memory = result["memory"]
    assert memory["device_peak_bytes"] == 3396 * 2**20  # Process memory(MB) of this pid
    assert memory["device_total_bytes"] == 65536 * 2**20  # NPU 0's HBM
    assert memory["device_source"].startswith("npu-smi process memory")
    # profile: the adapter's profiling for the whole run, no TF trace window
    assert _sets(fake_npu)["profiling_config.enable_profiling"] is True
    assert result["profile"]["whole_run"] and result["profile"]["tool"].startswith("adapter")
    assert result["measured_steps"] == 15


def test_npu_memory_falls_back_to_the_chips_hbm():
    from harness.devices.npu import NpuMemoryMonitor

    text = open(os.path.join(HERE, "data", "ascend", "npu-smi-910B3.txt")).read()
    monitor = NpuMemoryMonitor(chip=1, read=lambda: text)  # our pid is not in the table
    monitor.start()
    memory = monitor.stop()
    assert memory["device_peak_bytes"] == 4483 * 2**20
    assert "whole chip" in memory["device_source"]
    assert NpuMemoryMonitor(chip=0, read=lambda: None).stop()["device_peak_bytes"] is None


# --- loop sinking, broadcast, device ids (issue 12) --------------------------------------------


def _record_launches(monkeypatch, fake):
    """Each engine launch as (steps, the adapter's loop size at that moment)."""
    from harness.run.engine import EagerEngine

    launches = []
    original = EagerEngine.launch

    def launch(self, steps):
        launches.append((steps, fake.fake_loop_size()))
        return original(self, steps)

    monkeypatch.setattr(EagerEngine, "launch", launch)
    return launches


@tf2_adapter
def test_the_npu_loop_size_is_the_cases_n_before_every_launch(fake_npu, bench_run, tiny,
                                                             tiny_case, monkeypatch):
    launches = _record_launches(monkeypatch, fake_npu)
    tiny_case.update(device="npu", train={"steps": 20, "warmup_steps": 5, "log_every": 5})
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert report["status"] == "ok", report["results"][0].get("error")
    assert report["case"]["train"]["steps_per_loop"] == 5  # npu default: log_every
    assert [c for c in fake_npu.CALLS if c[0] == "set_npu_loop_size"] == [("set_npu_loop_size", 5)]
    # one compiled call per loop, each with the loop size the adapter will run it with
    assert launches == [(5, 5)] * 4
    result = report["results"][0]
    assert [(i["step"], i["steps"]) for i in result["throughput"]["intervals"]] == [
        (10, 5), (15, 5), (20, 5)]
    # set before the first call: the options were set and the device opened before it
    names = [c[0] for c in fake_npu.CALLS]
    assert names.index("as_default") < names.index("set_npu_loop_size")


@tf2_adapter
def test_a_shorter_last_loop_gets_its_own_loop_size(fake_npu, bench_run, tiny, tiny_case,
                                                    monkeypatch):
    launches = _record_launches(monkeypatch, fake_npu)
    tiny_case.update(device="npu", train={"steps": 22, "warmup_steps": 4, "log_every": 8,
                                          "steps_per_loop": 4})
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert report["status"] == "ok", report["results"][0].get("error")
    assert [c[1] for c in fake_npu.CALLS if c[0] == "set_npu_loop_size"] == [4, 2]
    assert launches == [(4, 4)] * 5 + [(2, 2)]
    assert all(steps == size for steps, size in launches)


def test_the_npu_default_loop_must_divide_the_warmup(fake_npu, bench_cli, tmp_path, tiny_case):
    tiny_case.update(device="npu", train={"steps": 30, "warmup_steps": 5, "log_every": 10})
    path = _cli_case(tmp_path, tiny_case)
    out = tmp_path / "reports"
    result = bench_cli("run", path, "--out", str(out), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"bench: error: {path}: train.warmup_steps: must be a multiple of train.steps_per_loop "
        f"(10, the npu default): intervals, warmup and evaluations end at whole loops; got 5; "
        f"or set train.steps_per_loop")
    assert not out.exists() and not _opens(fake_npu)


def test_device_id_maps_a_physical_device_id_to_its_logical_id(fake_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_VISIBLE_DEVICES", "4-7")
    monkeypatch.setenv("DEVICE_ID", "6")  # physical: the third visible device
    options = {"precision": "fp32"}
    NpuBackend().prepare(_case(), 1, options)
    assert [call[1] for call in _opens(fake_npu)] == [2]
    assert (options["npu_device_id"], options["physical_device_id"]) == (2, 6)


def test_an_option_setter_type_error_names_the_case_key(fake_npu, monkeypatch):
    config_class = type(fake_npu.global_options())
    original = config_class.__setattr__

    def setattr_(self, name, value):
        if name == "hcom_parallel":
            raise TypeError("Expected bool, got str")  # adapters >= 2023-06
        original(self, name, value)

    monkeypatch.setattr(config_class, "__setattr__", setattr_)
    with pytest.raises(BenchError) as err:
        NpuBackend().prepare(_case(hcom_parallel=True), 1,
                             {"precision": "fp32", "hcom_parallel": True})
    assert str(err.value) == ("cases/c.yaml: npu.hcom_parallel: the installed npu_device rejects "
                              "hcom_parallel = True: Expected bool, got str")


def test_aic_metrics_by_name_opens_with_a_metric_group(fake_npu):
    options = {"precision": "fp32", "profiling": True,
               "profiling_options": "training_trace:aic_metrics"}
    NpuBackend().prepare(_case(), 1, options)  # the fake's open() refuses "on" there
    sets = _sets(fake_npu)
    assert '"aic_metrics": "PipeUtilization"' in sets["profiling_config.profiling_options"]

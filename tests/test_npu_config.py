"""npu_bridge (TF 1.15) configs on the installed TF, option checks, and ``bench npu-config``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.devices.npu_config import (
    Call,
    global_option_values,
    run_config_kwargs,
    run_config_source,
    session_config,
    session_config_source,
)
from harness.devices.options import PRECISION_MODES
from harness.errors import BenchError
from harness.plugins import hookimpl
from harness.run.plan import device_options, load
from harness.testing import write_case

pytestmark = pytest.mark.core  # also run on the TF 2.6.5 job (Ascend's TF 2 stack)

MODELZOO = {"precision": "mixed", "iterations_per_loop": 1000, "hcom_parallel": True}


def _params(config) -> dict:
    (custom_op,) = config.graph_options.rewrite_options.custom_optimizers
    assert custom_op.name == "NpuOptimizer"
    out = {}
    for key in custom_op.parameter_map:
        attr = custom_op.parameter_map[key]
        value = getattr(attr, attr.WhichOneof("value"))
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def test_session_config_has_the_npu_optimizer_and_its_parameter_map():
    config = session_config(MODELZOO)
    assert _params(config) == {"use_off_line": True, "precision_mode": "allow_mix_precision",
                               "iterations_per_loop": 1000, "hcom_parallel": True,
                               "enable_data_pre_proc": True}
    rewrite = config.graph_options.rewrite_options
    assert rewrite.remapping == rewrite.OFF and rewrite.memory_optimization == rewrite.OFF


def test_session_config_dump_profiling_and_mixlist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ops.json").write_text("{}")
    params = _params(session_config({
        "precision": "fp32", "modify_mixlist": "ops.json", "enable_dump": True,
        "dump_path": "dump", "dump_step": "0|5", "profiling": True,
        "profiling_options": {"training_trace": "on", "fp_point": "conv1/Conv2D"}}))
    assert params["precision_mode"] == "force_fp32"
    assert params["modify_mixlist"] == str(tmp_path / "ops.json")
    assert (params["enable_dump"], params["dump_path"], params["dump_step"]) == (
        True, str(tmp_path / "dump"), "0|5")
    assert params["profiling_mode"] is True
    assert json.loads(params["profiling_options"]) == {
        "output": str(tmp_path / "profiling"), "training_trace": "on",
        "fp_point": "conv1/Conv2D"}


def test_printed_session_source_builds_the_same_proto():
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    from harness.tfcompat import tf

    config = session_config({**MODELZOO, "enable_dump": True, "dump_path": "/d"})
    source = session_config_source(config)
    assert 'custom_op.parameter_map["precision_mode"].s = ' \
           "tf.compat.as_bytes('allow_mix_precision')" in source
    # sess.run scripts loop on the device only through the op set_iteration_per_loop returns
    assert "# train_op = util.set_iteration_per_loop(sess, train_op, 1000)" in source
    # Run it as a TF 1.15 script would, with tf.ConfigProto played by the TF 2 compat class.
    body = "\n".join(line for line in source.splitlines() if not line.startswith(("import", "from")))
    tf1 = SimpleNamespace(ConfigProto=tf.compat.v1.ConfigProto, compat=tf.compat)
    scope = {"tf": tf1, "RewriterConfig": RewriterConfig}
    exec(body, scope)  # our own generated source
    assert scope["config"] == config


def test_run_config_kwargs_and_their_source():
    kwargs = run_config_kwargs({**MODELZOO, "enable_dump": True, "dump_path": "/d",
                                "dump_mode": "all"})
    assert kwargs == {"precision_mode": "allow_mix_precision", "iterations_per_loop": 1000,
                      "hcom_parallel": True, "enable_data_pre_proc": True,
                      "dump_config": Call("DumpConfig", {"enable_dump": True,
                                                         "enable_dump_debug": False,
                                                         "dump_path": "/d", "dump_mode": "all"})}
    seen = {}

    def npu_run_config(**given):
        seen.update(given)

    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    from harness.tfcompat import tf

    source = run_config_source(kwargs)
    body = "\n".join(line for line in source.splitlines()
                     if not line.startswith(("from", "import")))
    exec(body, {"NPURunConfig": npu_run_config, "DumpConfig": lambda **kw: ("DumpConfig", kw),
                "MODEL_DIR": "/m", "RewriterConfig": RewriterConfig,
                "tf": SimpleNamespace(ConfigProto=tf.compat.v1.ConfigProto)})
    assert seen["dump_config"] == ("DumpConfig", kwargs["dump_config"].kwargs)
    assert seen["iterations_per_loop"] == 1000 and seen["model_dir"] == "/m"
    # NPUEstimator adds its own NpuOptimizer to the session config it gets: none in ours
    rewrite = seen["session_config"].graph_options.rewrite_options
    assert not rewrite.custom_optimizers and rewrite.remapping == RewriterConfig.OFF


def test_tf2_global_options_leave_out_what_tf2_has_not():
    values = global_option_values({**MODELZOO, "enable_data_pre_proc": False})
    assert values == {"precision_mode": "allow_mix_precision", "hcom_parallel": True}


# --- bench npu-config, and the option checks every run goes through -------------------------


@hookimpl
def configure_npu(case, options):
    options.setdefault("iterations_per_loop", 100)
    if case.params.get("hidden") == 7:
        options["precision_mode"] = "fp8"  # a plugin bug


@hookimpl
def register_models(registry):
    registry.extend("tiny_mlp")  # it amends another plugin's model: it says so


AMENDER = SimpleNamespace(__name__="amender", configure_npu=configure_npu,
                          register_models=register_models)


def test_bench_npu_config_prints_all_three(bench_cli, tmp_path, tiny_case):
    path = write_case(tmp_path, {**tiny_case, "device": "npu", "precision": "mixed",
                                 "npu": {"hcom_parallel": True}})
    result = bench_cli("npu-config", path, "--plugin", "tiny_model")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "options.precision_mode = 'allow_mix_precision'" in out
    assert "custom_op.name = 'NpuOptimizer'" in out
    assert 'custom_op.parameter_map["hcom_parallel"].b = True' in out
    # TF 2's loop size and TF 1.15's iterations_per_loop: train.steps_per_loop (npu default:
    # log_every, 5 here)
    assert "run_config = NPURunConfig(" in out and "iterations_per_loop=5," in out
    assert 'custom_op.parameter_map["iterations_per_loop"].i = 5' in out
    assert "npu_device.set_npu_loop_size(5)" in out
    data = json.loads(bench_cli("npu-config", path, "--plugin", "tiny_model", "--json",
                                "--set", "npu.iterations_per_loop=1000").stdout)
    assert data["session_config"]["parameter_map"]["iterations_per_loop"] == 1000
    assert data["npu_run_config"]["precision_mode"] == "allow_mix_precision"
    assert data["options"]["tiny_configured"] is True  # the tiny plugin's configure_npu ran


@pytest.mark.parametrize("npu, message", [
    ({"precision_mode": "fp16"}, "npu.precision_mode: expected one of allow_mix_precision, "),
    ({"precison_mode": "force_fp32"}, "npu.precison_mode: unknown option; expected one of "
                                      "precision_mode, "),
    ({"iterations_per_loop": 0}, "npu.iterations_per_loop: expected an integer >= 1, got 0"),
    ({"loss_scale": "auto"}, "npu.loss_scale: expected 'dynamic', 'none' or a number > 0"),
    ({"modify_mixlist": "nope.json"}, "npu.modify_mixlist: no such file: nope.json"),
    ({"enable_dump": True}, "npu.dump_path: required when enable_dump is true"),
    ({"enable_dump_debug": True}, "npu.dump_path: required when enable_dump_debug is true"),
    ({"profiling": True, "profiling_options": {"aic_metrics": "on"}},
     "npu.profiling_options: aic_metrics: expected an AI Core metric group, one of "
     "PipeUtilization, "),
    ({"profiling": True, "profiling_options": "trainig_trace"},
     "npu.profiling_options: expected a mapping, JSON or trace names"),
])
def test_bad_options_stop_every_device_before_a_report(bench_cli, tmp_path, tiny_case, npu,
                                                       message):
    path = write_case(tmp_path, {**tiny_case, "device": "cpu", "npu": npu})
    out = tmp_path / "reports"
    result = bench_cli("run", path, "--out", str(out), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"bench: error: {path}: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_plugin_set_bad_value_is_named_with_its_origin(tmp_path, tiny, tiny_case):
    defaults = {k: v for k, v in tiny_case.items() if k != "name"}
    path = write_case(tmp_path, {"defaults": defaults,
                                 "cases": [{"name": "a"}, {"name": "b", "params": {"hidden": 7}}]})
    plugins, (first, second) = load([path], [], plugin_objects=[tiny, AMENDER])
    assert device_options(first, plugins)["iterations_per_loop"] == 100  # configure_npu ran
    with pytest.raises(BenchError) as err:
        device_options(second, plugins)
    assert str(err.value) == (f"{path}: cases[1].npu.precision_mode: expected one of "
                              f"{', '.join(PRECISION_MODES)}, got 'fp8' "
                              f"(set by a configure_npu hook)")

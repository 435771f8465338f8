"""The measured loop end to end with the tiny model plugin (in-process, CPU)."""

from __future__ import annotations

import json
import os

import pytest
from engines import eager_api, multi_device

pytestmark = pytest.mark.core


def test_tiny_model_learns_and_report_is_complete(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 300, "warmup_steps": 10, "log_every": 50}
    outcome = bench_run(tiny_case, plugins=[tiny])
    report = outcome.report
    assert report["status"] == "ok" and outcome.exit_code == 0
    assert report["schema"] == "zoobench.report/1"
    (result,) = report["results"]
    # 4 classes: chance is 0.25; the learnable task gets well above it.
    assert result["accuracy"]["accuracy"] > 0.7
    assert result["loss"]["last"] < result["loss"]["first"]
    assert result["measured_steps"] == 290
    assert result["global_batch_size"] == 32
    tp = result["throughput"]
    assert tp["samples_per_sec"] > 0
    assert tp["p5"] <= tp["median"] <= tp["p95"]
    assert sum(i["samples"] for i in tp["intervals"]) == 290 * 32
    assert [i["step"] for i in tp["intervals"]] == [50, 100, 150, 200, 250, 300]
    assert result["mfu"] is not None and 0 < result["mfu"] < 1
    on_disk = json.load(open(os.path.join(outcome.folder, "report.json")))
    assert on_disk == json.loads(json.dumps(report, default=str))
    assert on_disk["case"]["params"]["hidden"] == 32  # resolved params, defaults merged
    assert on_disk["environment"]["plugins"]["tiny_model"] == "0.0.1"
    md = open(os.path.join(outcome.folder, "report.md")).read()
    assert "| 1 | 32 |" in md and "status **ok**" in md
    log = open(os.path.join(outcome.folder, "train.log")).read()
    assert "step    300/300" in log and "eval at step 300" in log


def test_throughput_matches_known_step_time_and_excludes_warmup(bench_run, tiny, tiny_case):
    # Each step sleeps 100 ms (the model itself takes ~1 ms); warmup steps sleep 1 s. Had the
    # warmup leaked into the window, the rate would be off by more than half.
    tiny_case["train"] = {"steps": 14, "warmup_steps": 2, "log_every": 4}
    tiny_case["params"] = {"sleep_ms": 100.0, "warmup_sleep_ms": 1000.0}
    outcome = bench_run(tiny_case, plugins=[tiny])
    result = outcome.report["results"][0]
    expected = 32 / 0.100
    assert result["throughput"]["samples_per_sec"] == pytest.approx(expected, rel=0.05)
    assert result["step_time_ms"]["median"] == pytest.approx(100.0, rel=0.05)
    assert result["measured_steps"] == 12


def test_epochs_are_converted_with_the_dataset_size(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"epochs": 2, "warmup_steps": 4, "log_every": 16}
    tiny_case["params"] = {"train_examples": 512}
    result = bench_run(tiny_case, plugins=[tiny]).report["results"][0]
    assert result["status"] == "ok"
    assert result["measured_steps"] == 2 * 512 // 32 - 4


def test_nan_loss_is_diverged_and_keeps_partial_results(bench_run, tiny, tiny_case):
    tiny_case["params"] = {"nan_at_step": 18}
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "diverged" and outcome.exit_code == 3
    result = outcome.report["results"][0]
    assert "loss is nan at step 20" in result["error"]
    assert result["measured_steps"] == 15


def test_exception_in_a_step_is_failed_with_error(bench_run, tiny, tiny_case):
    tiny_case["params"] = {"fail_at_step": 12}
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "failed"
    assert "injected failure at step 12" in outcome.report["results"][0]["error"]
    assert os.path.exists(os.path.join(outcome.folder, "report.json"))


def test_ctrl_c_is_interrupted_and_stops_later_device_counts(bench_run, tiny, tiny_case):
    tiny_case["devices"] = [1, 2]
    tiny_case["params"] = {"interrupt_at_step": 15}
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "interrupted"
    assert len(outcome.report["results"]) == 1
    assert outcome.report["results"][0]["measured_steps"] == 10


@multi_device
def test_device_counts_give_one_result_each_with_scaling(bench_run, tiny, tiny_case):
    tiny_case["devices"] = [1, 2]
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert [r["devices"] for r in report["results"]] == [1, 2]
    one, two = report["results"]
    assert two["global_batch_size"] == 64
    assert two["throughput"]["per_device"] == pytest.approx(
        two["throughput"]["samples_per_sec"] / 2)
    assert one["scaling_efficiency"] == pytest.approx(1.0)
    assert two["scaling_efficiency"] == pytest.approx(
        two["throughput"]["samples_per_sec"] / (2 * one["throughput"]["samples_per_sec"]))


def test_time_to_accuracy_when_target_is_reached(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 200, "warmup_steps": 5, "log_every": 25}
    tiny_case["eval"] = {"every_steps": 50, "target": {"accuracy": 0.5}}
    result = bench_run(tiny_case, plugins=[tiny]).report["results"][0]
    assert result["target_met"] is True
    first_hit = next(e for e in result["evals"] if e["accuracy"] >= 0.5)
    assert result["time_to_accuracy_s"] == first_hit["elapsed_s"]
    assert [e["step"] for e in result["evals"]][:3] == [50, 100, 150]


def test_runs_never_overwrite_each_other(bench_run, tiny, tiny_case):
    first = bench_run(tiny_case, plugins=[tiny])
    second = bench_run(tiny_case, plugins=[tiny])
    assert first.folder != second.folder
    assert os.path.exists(os.path.join(first.folder, "report.json"))
    assert not any(name.endswith(".tmp") for name in os.listdir(second.folder))


def test_hooks_are_all_called(bench_run, tiny, tiny_case):
    """build_dataset, build_model, configure_npu and evaluate all answer for the tiny model."""
    report = bench_run(tiny_case, plugins=[tiny]).report
    assert report["device_options"]["tiny_configured"] is True  # configure_npu
    assert report["results"][0]["accuracy"]  # evaluate (the plugin's own, not the builtin)
    assert report["results"][0]["mfu"] is not None  # build_model's flops_per_sample
    assert report["environment"]["tiny_fact"] == "from the tiny plugin"  # environment
    assert tiny.WRITTEN[-1][0] == report["run_id"]  # report_written, after the files exist
    assert os.path.exists(os.path.join(tiny.WRITTEN[-1][1], "report.json"))


@eager_api
def test_current_lr_reads_schedules_and_mirrored_rates():
    from harness.run.train_step import current_lr
    from harness.tfcompat import keras, tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        scheduled = keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100))
        plain = keras.optimizers.SGD(learning_rate=0.1)
    assert current_lr(scheduled, 50) == pytest.approx(0.05)
    assert current_lr(plain, 7) == pytest.approx(0.1)
    wrapped = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD(0.3))
    assert current_lr(wrapped, 1) == pytest.approx(0.3)

"""Run events: events.mllog (checked with mlperf-logging's parser) and TensorBoard scalars."""

from __future__ import annotations

import glob
import json
import os

import pytest
from engines import GRAPH_ONLY

from harness.plugins import hookimpl

pytestmark = pytest.mark.core


def _mllog(folder):
    """Parse events.mllog with the mlperf-logging package; every line must be a record."""
    from mlperf_logging.compliance_checker.mlp_parser import parse_file

    path = os.path.join(folder, "events.mllog")
    loglines, errors = parse_file(path, ruleset="5.0.0")
    assert errors == []
    with open(path, encoding="utf-8") as fh:
        raw = [line for line in fh if line.strip()]
    assert len(loglines) == len(raw) and all(line.startswith(":::MLLOG {") for line in raw)
    return [json.loads(line[len(":::MLLOG "):]) for line in raw]


def test_mllog_records_a_run_with_evals(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 100, "warmup_steps": 4, "log_every": 16}
    tiny_case["eval"] = {"at_end": True, "every_steps": 48}
    tiny_case["params"] = {"train_examples": 1024}  # 32 steps per epoch
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "ok"
    records = _mllog(outcome.folder)
    keys = [r["key"] for r in records]
    for key in ("submission_benchmark", "submission_division", "submission_org",
                "submission_platform", "submission_status", "seed", "global_batch_size",
                "init_start", "init_stop", "run_start", "epoch_start", "epoch_stop",
                "block_start", "block_stop", "eval_start", "eval_accuracy", "eval_stop",
                "run_stop"):
        assert key in keys, key
    assert keys.index("init_start") < keys.index("run_start") < keys.index("block_start")
    assert keys[-1] == "run_stop"
    value = {r["key"]: r["value"] for r in records if r["event_type"] == "POINT_IN_TIME"}
    assert value["global_batch_size"] == 32 and value["seed"] == 0
    assert value["submission_benchmark"] == "tiny_mlp"
    # every interval is one block; the blocks cover the measured window exactly
    blocks = [r["metadata"] for r in records if r["key"] == "block_stop"]
    result = outcome.report["results"][0]
    assert [(b["first_step"] + b["step_count"] - 1) for b in blocks] == [
        i["step"] for i in result["throughput"]["intervals"]]
    assert sum(b["step_count"] for b in blocks) == result["measured_steps"] == 96
    # epochs 0..3 start and stop (100 steps of 32), each INTERVAL_START has its END
    for key in ("epoch", "block", "eval", "init", "run"):
        starts = sum(r["key"] == f"{key}_start" for r in records)
        assert starts == sum(r["key"] == f"{key}_stop" for r in records) and starts
    assert [r["metadata"]["epoch_num"] for r in records if r["key"] == "epoch_stop"] == [0, 1, 2, 3]
    evals = [r for r in records if r["key"] == "eval_accuracy"]
    assert [e["metadata"]["step"] for e in evals] == [48, 96, 100]
    assert evals[-1]["value"] == pytest.approx(result["accuracy"]["accuracy"])
    stop = records[-1]
    assert stop["metadata"]["status"] == "success" and stop["metadata"]["zoobench_status"] == "ok"
    times = [r["time_ms"] for r in records]
    assert times[keys.index("run_start")] <= times[-1]


def test_failed_run_still_closes_its_mllog(bench_run, tiny, tiny_case):
    tiny_case["params"] = {"fail_at_step": 12}
    outcome = bench_run(tiny_case, plugins=[tiny])
    assert outcome.report["status"] == "failed"
    records = _mllog(outcome.folder)
    stop = records[-1]
    assert stop["key"] == "run_stop"
    assert stop["metadata"]["status"] == "aborted"
    assert stop["metadata"]["zoobench_status"] == "failed"
    assert "injected failure at step 12" in stop["metadata"]["error"]


def test_tensorboard_scalars_match_the_report(bench_run, tiny, tiny_case):
    from harness.tfcompat import tf

    tiny_case["devices"] = [1] if GRAPH_ONLY else [1, 2]  # TF 1.x: one device per process
    tiny_case["train"] = {"steps": 30, "warmup_steps": 5, "log_every": 5}
    outcome = bench_run(tiny_case, plugins=[tiny])
    for result in outcome.report["results"]:
        folder = os.path.join(outcome.folder, "tensorboard", f"devices_{result['devices']}")
        scalars: dict[str, dict[int, float]] = {}
        for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    scalars.setdefault(value.tag, {})[event.step] = float(
                        tf.make_ndarray(value.tensor))
        assert set(scalars) >= {"train/loss", "train/samples_per_sec", "train/step_time_ms",
                                "eval/accuracy"}
        intervals = result["throughput"]["intervals"]
        assert scalars["train/samples_per_sec"] == pytest.approx(
            {i["step"]: i["samples_per_sec"] for i in intervals}, rel=1e-5)
        assert scalars["train/loss"] == pytest.approx(dict(result["loss"]["curve"]), rel=1e-5)
        assert scalars["eval/accuracy"] == pytest.approx({30: result["accuracy"]["accuracy"]})
        # runner.current_lr gives None for a MirroredStrategy's distributed variable (2 devices)
        lrs = scalars.get("train/learning_rate", {})
        assert len(lrs) == len(intervals) or result["devices"] > 1
        assert all(v == pytest.approx(0.1) for v in lrs.values())


class BrokenSink:
    def interval(self, record, interval):
        raise OSError("disk full")


class BrokenSinkPlugin:
    __name__ = "broken_sink"

    @hookimpl
    def run_event_sink(self, case, folder):
        return BrokenSink()


def test_a_failing_sink_is_logged_and_dropped_not_fatal(bench_run, tiny, tiny_case):
    outcome = bench_run(tiny_case, plugins=[tiny, BrokenSinkPlugin()])
    assert outcome.report["status"] == "ok"
    log = open(os.path.join(outcome.folder, "train.log"), encoding="utf-8").read()
    assert log.count("event sink BrokenSink failed at interval: OSError: disk full") == 1
    assert _mllog(outcome.folder)[-1]["key"] == "run_stop"  # the other sinks went on


def test_a_run_ending_on_an_epoch_boundary_closes_its_epochs(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 64, "warmup_steps": 4, "log_every": 16}
    tiny_case["params"] = {"train_examples": 1024}  # 32 steps per epoch: ends on epoch 2
    outcome = bench_run(tiny_case, plugins=[tiny])
    records = _mllog(outcome.folder)
    assert [r["metadata"]["epoch_num"] for r in records if r["key"] == "epoch_stop"] == [0, 1]
    assert sum(r["key"] == "epoch_start" for r in records) == 2
    with open(os.path.join(outcome.folder, "train.log"), encoding="utf-8") as fh:
        assert "event sink" not in fh.read()  # no sink broke and was dropped

"""The README's first command: cases/quickstart.yaml, run short (STYLE 9: shipped cases run)."""

from __future__ import annotations

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_runs_short_from_the_checkout(tmp_path, bench_cli, monkeypatch):
    monkeypatch.chdir(ROOT)  # the case's data and config paths are relative to the checkout
    out = tmp_path / "reports"
    result = bench_cli("run", "cases/quickstart.yaml", "--out", str(out), "--devices", "1",
                       "--set", "train.steps=6", "--set", "train.epochs=null",
                       "--set", "train.warmup_steps=2", "--set", "train.log_every=3",
                       "--set", "eval.target={}")
    assert result.exit_code == 0, result.stderr[-3000:]
    reports = {}
    for run in os.listdir(out):
        with open(os.path.join(out, run, "report.json"), encoding="utf-8") as fh:
            report = json.load(fh)
        reports[report["case"]["name"]] = report
    assert set(reports) == {"quickstart_resnext50", "quickstart_bert",
                            "quickstart_shapes_accuracy"}
    for report in reports.values():
        (result_1,) = report["results"]
        assert report["status"] == "ok" and result_1["measured_steps"] == 4
        assert result_1["throughput"]["samples_per_sec"] > 0
    shapes = reports["quickstart_shapes_accuracy"]["results"][0]
    assert shapes["data_source"] == "tfrecord" and 0 <= shapes["accuracy"]["top1"] <= 1

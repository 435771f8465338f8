"""bench compare: verdicts on real runs with a planted slowdown, and rows it must not compare."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from harness.plugins import hookimpl
from harness.reports.compare import verdict
from harness.testing import run_in_process


class CannLabel:
    """Stamps a CANN version into the environment, as the npu backend's hook does."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.__name__ = f"cann_label_{version}"

    @hookimpl
    def environment(self, env):
        env["cann_version"] = self.version


def _case(name, sleep_ms):
    # each step sleeps on the host, so the step time is known and the noise small
    return {"name": name, "model": "tiny_mlp", "device": "cpu", "devices": [1],
            "batch_size": 32, "train": {"steps": 18, "warmup_steps": 2, "log_every": 2},
            "eval": {"at_end": False}, "params": {"sleep_ms": sleep_ms}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four real runs: 'steady' at 50 ms/step on both versions, 'slowed' 50 -> 75 ms/step.
    Pairs that are compared run back to back, so machine load hits both sides alike."""
    import tiny_model

    folders = {}
    for name, version, sleep in (("steady", "A", 50.0), ("steady", "B", 50.0),
                                 ("slowed", "A", 50.0), ("slowed", "B", 75.0)):
        out = tmp_path_factory.mktemp(f"{name}{version}")
        outcome = run_in_process(_case(name, sleep), str(out), [tiny_model, CannLabel(version)])
        assert outcome.report["status"] == "ok"
        assert outcome.report["environment"]["cann_version"] == version
        folders[name, version] = outcome.folder
    return folders


def test_planted_slowdown_is_flagged_exactly_and_fails_the_gate(bench_cli, runs):
    paths = [runs["steady", "A"], runs["slowed", "A"], runs["steady", "B"], runs["slowed", "B"]]
    result = bench_cli("compare", *paths, "--format", "json", "--fail-on-regression")
    assert result.exit_code == 1, result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["columns"] == ["A", "B"] and comparison["regressions"] == 1
    verdicts = {row["case"]: row["verdict"] for row in comparison["rows"]}
    assert verdicts == {"steady": "unchanged", "slowed": "regression"}
    slowed = next(r for r in comparison["rows"] if r["case"] == "slowed")
    # 50 -> 75 ms of sleep per step is a third less throughput; the step's own few ms
    # (the same on both sides) make the drop a little smaller
    assert -36 < slowed["cells"][1]["change_pct"] < -20
    assert slowed["cells"][1]["p_value"] < 0.01
    # without the gate the same comparison exits 0; the table names the verdicts
    table = bench_cli("compare", *paths)
    assert table.exit_code == 0 and "regression" in table.stdout and "baseline" in table.stdout
    assert "1 regression(s) flagged" in table.stderr


def test_identical_configurations_are_not_flagged(bench_cli, runs):
    result = bench_cli("compare", runs["steady", "A"], runs["steady", "B"], "--format", "json",
                       "--fail-on-regression")
    assert result.exit_code == 0, result.stdout
    (row,) = json.loads(result.stdout)["rows"]
    assert row["verdict"] == "unchanged"
    assert abs(row["cells"][1]["change_pct"]) < 5


def test_markdown_and_html_outputs(bench_cli, runs, tmp_path):
    paths = [runs["slowed", "A"], runs["slowed", "B"]]
    md = bench_cli("compare", *paths, "--format", "md")
    assert md.exit_code == 0
    assert "| slowed (tiny_mlp, synthetic, fp32, 1 dev, batch 32) |" in md.stdout
    assert "regression" in md.stdout and "Mann-Whitney" in md.stdout
    out = tmp_path / "cmp.html"
    html = bench_cli("compare", *paths, "--format", "html", "-o", str(out))
    assert html.exit_code == 0 and html.stdout == ""
    text = out.read_text()
    assert text.count('<img src="data:image/png;base64,') == 1  # one bar chart per row
    assert 'class="status regression"' in text


def test_by_any_report_key(bench_cli, runs):
    # columns can be any dotted key; here the step sleep, which differs between slowed runs
    result = bench_cli("compare", runs["slowed", "A"], runs["slowed", "B"], "--by",
                       "case.params.sleep_ms", "--format", "json")
    assert json.loads(result.stdout)["columns"] == ["50.0", "75.0"]


def test_without_by_the_key_that_separates_the_reports_is_picked_and_named(bench_cli, runs):
    by_cann = bench_cli("compare", runs["slowed", "A"], runs["slowed", "B"], "--format", "json")
    assert by_cann.exit_code == 0, by_cann.stderr
    assert json.loads(by_cann.stdout)["columns"] == ["A", "B"]
    assert "bench compare: --by environment.cann_version (the first key whose values differ: " \
           "A, B)" in by_cann.stderr
    # two runs of one machine and software stack: only the runs themselves differ
    same = bench_cli("compare", runs["steady", "A"], runs["slowed", "A"], "--format", "json")
    assert same.exit_code == 0, same.stderr
    comparison = json.loads(same.stdout)
    assert comparison["by"] == "run_id" and len(comparison["columns"]) == 2
    assert "cann_version, tensorflow" in comparison["by_reason"]


# --- rows that must not be compared: reports derived from one real run -------------------


@pytest.fixture(scope="module")
def template(runs):
    with open(os.path.join(runs["steady", "A"], "report.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _variant(template, tmp_path, label, version, **changes):
    report = copy.deepcopy(template)
    report["environment"]["cann_version"] = version
    result = report["results"][0]
    for key, value in changes.items():
        if key == "source":
            report["case"]["data"]["source"] = result["data_source"] = value
        elif key == "global_batch_size":
            result[key] = value
        elif key == "status":
            result["status"], result["error"] = value, "injected failure at step 12"
        elif key == "name":
            report["case"]["name"] = value
    folder = tmp_path / label
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(report))
    return str(folder)


def test_rows_that_cannot_be_compared_are_listed_with_the_reason(bench_cli, template, tmp_path):
    paths = [
        _variant(template, tmp_path, "a-batch", "A", name="batch"),
        _variant(template, tmp_path, "b-batch", "B", name="batch", global_batch_size=64),
        _variant(template, tmp_path, "a-data", "A", name="data"),
        _variant(template, tmp_path, "b-data", "B", name="data", source="tfrecord"),
        _variant(template, tmp_path, "a-only", "A", name="only"),
        _variant(template, tmp_path, "a-fail", "A", name="fail"),
        _variant(template, tmp_path, "b-fail", "B", name="fail", status="failed"),
    ]
    result = bench_cli("compare", *paths, "--format", "json", "--fail-on-regression")
    assert result.exit_code == 0, result.stderr  # nothing comparable, nothing flagged
    rows = {(r["case"], r["data_source"]): r for r in json.loads(result.stdout)["rows"]}
    assert all(r["verdict"] == "not comparable" for r in rows.values())
    assert rows["batch", "synthetic"]["problems"] == ["global batch 64 in B vs 32 in A"]
    assert rows["data", "synthetic"]["problems"] == [
        "data source tfrecord in B, synthetic here: synthetic and real data are never compared"]
    assert rows["data", "tfrecord"]["problems"][0].startswith("data source synthetic in A")
    assert rows["only", "synthetic"]["problems"] == ["missing in B"]
    assert rows["fail", "synthetic"]["problems"] == ["failed in B (injected failure at step 12)"]
    assert "change_pct" not in rows["batch", "synthetic"]["cells"][1]


def test_bad_input_names_the_file_and_key(bench_cli, template, tmp_path):
    path = _variant(template, tmp_path, "a", "A")
    result = bench_cli("compare", path, path, "--by", "environment.nope")
    assert result.exit_code == 2
    assert "report.json: --by environment.nope: no key 'nope'" in result.stderr
    same = bench_cli("compare", path, path)
    assert same.exit_code == 2 and "nothing to compare" in same.stderr


def test_verdict_needs_both_threshold_and_significance():
    rng = np.random.default_rng(0)

    def cell(mean, noise, n=12):
        samples = list(rng.normal(mean, noise * mean, n))
        return {"samples_per_sec": float(np.mean(samples)), "intervals": samples}

    # 300 comparisons of one configuration with 3% noise: never a regression
    same = [verdict(cell(100, 0.03), cell(100, 0.03), 5.0, 0.01)["verdict"] for _ in range(300)]
    assert "regression" not in same
    # a real 10% drop with 2% noise is always caught
    drops = [verdict(cell(100, 0.02), cell(90, 0.02), 5.0, 0.01)["verdict"] for _ in range(50)]
    assert drops == ["regression"] * 50
    # a large change on too few intervals is not significant (2 vs 2 cannot reach p < 0.01)
    few = verdict(cell(100, 0.02, 2), cell(50, 0.02, 2), 5.0, 0.01)
    assert few["verdict"] == "not significant" and few["change_pct"] < -40
    # a significant change inside the threshold is unchanged
    small = verdict(cell(100, 0.001), cell(98, 0.001), 5.0, 0.01)
    assert small["verdict"] == "unchanged" and small["p_value"] < 0.01

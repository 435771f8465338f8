"""Reliability, reports: one loader with a schema check for every command that reads
report.json, no run counted twice, `import-log` rates that measure something, and names
shown as written in the terminal and escaped in Markdown (issue 16, items 9, 10, 11, 14)."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from harness.testing import run_in_process

TRICKY = "[/bold] <script>alert(1)</script> | x"


def _case(name, sleep_ms):
    return {"name": name, "model": "tiny_mlp", "device": "cpu", "devices": [1],
            "batch_size": 32, "train": {"steps": 14, "warmup_steps": 2, "log_every": 2},
            "eval": {"at_end": False}, "params": {"sleep_ms": sleep_ms}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real runs of one case, 20 vs 24 ms per step, labelled A and B by their seed."""
    import tiny_model

    folders = []
    for seed, sleep in ((1, 20.0), (2, 24.0)):
        out = tmp_path_factory.mktemp(f"run{seed}")
        case = {**_case("steady", sleep), "seed": seed}
        outcome = run_in_process(case, str(out), [tiny_model])
        assert outcome.report["status"] == "ok"
        folders.append(outcome.folder)
    return folders


def _copy_with(folder, tmp_path, label, change):
    with open(os.path.join(folder, "report.json"), encoding="utf-8") as fh:
        report = json.load(fh)
    change(report)
    target = tmp_path / label
    target.mkdir()
    (target / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return str(target)


def _one_line_exit_2(result, *fragments):
    assert result.exit_code == 2, (result.stdout[-2000:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _drop(key):
    return lambda r: r.pop(key)


def _set(path, value):
    def change(report):
        node = report
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return change


MALFORMED = [
    ("no-case", _drop("case"), "case: missing"),
    ("results-nope", _set(["results"], "nope"), "results: expected a list, got a string"),
    ("throughput-null", _set(["results", 0, "throughput"], None),
     "results[0].throughput: expected a mapping, got null"),
    ("intervals-numbers", _set(["results", 0, "throughput", "intervals"], [1, 2]),
     "results[0].throughput.intervals[0]: expected a mapping, got int"),
    ("devices-text", _set(["results", 0, "devices"], "two"),
     "results[0].devices: expected an integer, got a string"),
    ("status-odd", _set(["status"], "fine"), "status: expected one of ok, failed"),
    ("accuracy-text", _set(["results", 0, "accuracy"], {"top1": "high"}),
     "results[0].accuracy.top1: expected a number, got a string"),
    ("case-name-null", _set(["case", "name"], None), "case.name: expected a string, got null"),
]


@pytest.mark.parametrize("label, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_report_body_is_one_line_in_compare_and_report(bench_cli, two_runs,
                                                                   tmp_path, label, change,
                                                                   message):
    bad = _copy_with(two_runs[0], tmp_path, label, change)
    for command in (["compare", two_runs[1], bad, "--by", "case.seed"], ["report", bad],
                    ["report", bad, "--html", str(tmp_path / "all.html")]):
        _one_line_exit_2(bench_cli(*command), f"{label}/report.json: {message}")


def test_not_json_a_fifo_and_a_wrong_schema_are_one_line(bench_cli, two_runs, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "report.json").write_text("{nope")
    _one_line_exit_2(bench_cli("report", str(tmp_path / "junk")), "line 1: not valid JSON")
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "report.json")
    _one_line_exit_2(bench_cli("compare", two_runs[0], str(tmp_path / "fifo" / "report.json")),
                     "not a regular file")
    other = _copy_with(two_runs[0], tmp_path, "other", _set(["schema"], "zoobench.report/9"))
    _one_line_exit_2(bench_cli("report", other), "schema: expected 'zoobench.report/1'")


def test_the_same_report_twice_is_counted_once(bench_cli, two_runs, tmp_path):
    a, b = two_runs
    once = bench_cli("compare", a, b, "--by", "case.seed", "--format", "json")
    twice = bench_cli("compare", a, a, os.path.join(a, "report.json"), b, "--by", "case.seed",
                      "--format", "json")
    assert once.exit_code == twice.exit_code == 0, twice.stderr
    first, second = json.loads(once.stdout)["rows"][0], json.loads(twice.stdout)["rows"][0]
    assert second["cells"][0]["runs"] == 1
    assert second["cells"][1]["p_value"] == first["cells"][1]["p_value"]
    # a copy of a run (same run_id) in the same column would double its intervals
    copy_dir = tmp_path / "copy"
    shutil.copytree(a, copy_dir)
    _one_line_exit_2(bench_cli("compare", a, str(copy_dir), b, "--by", "case.seed"),
                     "copy/report.json: run_id:", "give each run once")


def test_an_empty_folder_and_a_nan_threshold_are_errors(bench_cli, two_runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2(bench_cli("compare", *two_runs, str(empty), "--by", "case.seed"),
                     f"{empty}: no report.json in this folder")
    _one_line_exit_2(bench_cli("report", str(empty)), "no report.json in this folder")
    for value in ("nan", "inf", "-1"):
        _one_line_exit_2(bench_cli("compare", *two_runs, "--by", "case.seed", "--threshold",
                                   value), "--threshold: must be a finite number >= 0")


# --- item 10: import-log rates --------------------------------------------------------------


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "modelzoo")


@pytest.mark.parametrize("fps", ["0.0", "-5.0", "inf", "nan"])
def test_import_log_refuses_a_rate_that_measures_nothing(bench_cli, tmp_path, fps):
    with open(os.path.join(DATA, "resnext50_train.log"), encoding="utf-8") as fh:
        lines = fh.read().splitlines(keepends=True)
    rates = [i for i, line in enumerate(lines) if "FPS:" in line]
    target = rates[3]  # after the two lines dropped as warmup
    head, _, tail = lines[target].partition("FPS:")
    lines[target] = head + "FPS:  " + fps + "  " + tail.split(None, 1)[1]
    log = tmp_path / "train_0.log"
    log.write_text("".join(lines), encoding="utf-8")
    result = bench_cli("import-log", str(log), "--model", "resnext50", "--cann-version", "20.1",
                       "--devices", "1", "--batch-size", "32", "--out", str(tmp_path / "r"))
    _one_line_exit_2(result, "train_0.log", "expected a finite rate > 0")
    assert not (tmp_path / "r").exists()


# --- items 11 and 14: names in the terminal and in Markdown ------------------------------------


@pytest.fixture(scope="module")
def tricky_run(tmp_path_factory):
    from harness.testing import run_cli, write_case

    folder = tmp_path_factory.mktemp("tricky")
    case = {**_case(TRICKY, 0.0), "train": {"steps": 8, "warmup_steps": 2, "log_every": 2}}
    path = write_case(folder, case)
    result = run_cli("run", path, "--out", str(folder / "r"), "--plugin", "tiny_model")
    return result, folder / "r"


def test_rich_markup_in_a_case_name_is_printed_as_written(tricky_run):
    result, _out = tricky_run
    assert result.exit_code == 0, result.stderr
    assert "[/bold]" in result.stdout  # the summary table shows the name literally
    assert any(line.startswith("report: ") and line.endswith("(ok)")
               for line in result.stdout.splitlines())


def test_report_md_and_compare_md_escape_html(bench_cli, tricky_run, tmp_path):
    _result, out = tricky_run
    (folder,) = [os.path.join(out, d) for d in os.listdir(out)]
    with open(os.path.join(folder, "report.md"), encoding="utf-8") as fh:
        md = fh.read()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\| x" in md  # a pipe in a name does not split the table
    other = _copy_with(folder, tmp_path, "b", lambda r: r["environment"].update(
        cann_version="<b>B</b>", tensorflow=None) or r.update(run_id="other"))
    result = bench_cli("compare", folder, other, "--format", "md")
    assert result.exit_code == 0, result.stderr
    assert "<script>" not in result.stdout and "<b>" not in result.stdout
    assert "&lt;script&gt;" in result.stdout and "&lt;b&gt;B&lt;/b&gt;" in result.stdout
    table = bench_cli("compare", folder, other)
    assert table.exit_code == 0 and "[/bold]" in table.stdout


def test_every_report_we_write_passes_the_schema(two_runs, tricky_run):
    from harness.reports.store import load_report

    _result, out = tricky_run
    for folder in [*two_runs, *[os.path.join(out, d) for d in os.listdir(out)]]:
        report = load_report(folder)
        assert copy.deepcopy(report) == report and report["results"]

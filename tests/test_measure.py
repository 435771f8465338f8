"""The measurements beyond throughput: memory, repeats, the input pipeline, checkpoints
(resume, bench evaluate) and profile windows."""

from __future__ import annotations

import glob
import json
import os
import statistics
import subprocess
import sys

import pytest
from engines import eager_engine

from harness.errors import BenchError
from harness.run.memory import MemorySampler, max_memory, proc_status
from harness.run.throughput import repeat_statistics
from harness.testing import write_case

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHAPES = os.path.join(ROOT, "cases", "data", "shapes")


def _md(outcome) -> str:
    with open(os.path.join(outcome.folder, "report.md"), encoding="utf-8") as fh:
        return fh.read()


def _html(outcome) -> str:
    with open(os.path.join(outcome.folder, "report.html"), encoding="utf-8") as fh:
        return fh.read()


# --- memory ----------------------------------------------------------------------------------


@pytest.mark.core
def test_memory_is_measured_on_the_cpu(bench_run, tiny, tiny_case):
    outcome = bench_run(tiny_case, plugins=[tiny])
    memory = outcome.report["results"][0]["memory"]
    rss_now = proc_status()["VmRSS"]
    # the window's peak of this very process: TF alone holds far more than 50 MB
    assert 50 * 2**20 < memory["host_peak_bytes"] < 4 * rss_now
    assert memory["host_source"].startswith(("VmHWM", "VmRSS"))
    # the CPU "device" is the host: no separate device figure, and no guess
    assert memory["device_peak_bytes"] is None and memory["device_source"] is None
    md = _md(outcome)
    assert "memory host / device" in md and ("MiB / -" in md or "GiB / -" in md)


@pytest.mark.core
def test_sampled_rss_catches_a_peak_when_the_reset_is_refused(tmp_path):
    status = tmp_path / "status"
    status.write_text("VmHWM:\t 9999999 kB\nVmRSS:\t  1000 kB\n")
    sampler = MemorySampler(interval=0.01, status_path=str(status),
                            clear_refs_path=str(tmp_path / "no" / "clear_refs"))
    sampler.start()
    import time

    status.write_text("VmHWM:\t 9999999 kB\nVmRSS:\t  5000 kB\n")  # the window's peak
    time.sleep(0.2)
    status.write_text("VmHWM:\t 9999999 kB\nVmRSS:\t  2000 kB\n")
    time.sleep(0.1)
    memory = sampler.stop()
    # the lifetime VmHWM (from before the window) is not taken when it could not be reset
    assert memory["host_peak_bytes"] == 5000 * 1024
    assert memory["host_source"] == "VmRSS sampled every 10 ms"


@pytest.mark.core
def test_max_memory_keeps_each_largest_known_figure():
    merged = max_memory([
        {"host_peak_bytes": 5, "device_peak_bytes": None, "device_total_bytes": None,
         "host_source": "VmHWM", "device_source": None},
        {"host_peak_bytes": 7, "device_peak_bytes": 3, "device_total_bytes": 10,
         "host_source": "VmHWM", "device_source": "x"}, None])
    assert merged["host_peak_bytes"] == 7 and merged["device_peak_bytes"] == 3
    assert merged["device_total_bytes"] == 10 and merged["device_source"] == "x"
    assert max_memory([])["host_peak_bytes"] is None


# --- repeats ---------------------------------------------------------------------------------


@pytest.mark.core
def test_repeat_statistics_use_the_t_distribution():
    stats = repeat_statistics([10.0, 12.0, 14.0, 30.0])
    assert stats["n"] == 4 and stats["mean"] == 16.5
    sd = statistics.stdev([10.0, 12.0, 14.0, 30.0])
    assert stats["stdev"] == pytest.approx(sd)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3), from tables
    assert stats["ci95"] == pytest.approx([16.5 - half, 16.5 + half])
    assert stats["olympic_mean"] == 13.0  # 10 and 30 dropped
    one = repeat_statistics([5.0])
    assert one["stdev"] is None and one["ci95"] is None and one["olympic_mean"] is None


@pytest.mark.core
def test_repeat_3_gives_three_figures_and_their_statistics(tmp_path, tiny_case, bench_cli):
    tiny_case["train"] = {"steps": 30, "warmup_steps": 5, "log_every": 5}
    path = write_case(tmp_path, tiny_case)
    out = str(tmp_path / "r")
    result = bench_cli("run", path, "--out", out, "--plugin", "tiny_model", "--repeat", "3")
    assert result.exit_code == 0, result.stderr
    (report_path,) = glob.glob(os.path.join(out, "*", "report.json"))
    report = json.load(open(report_path))
    assert report["case"]["repeat"] == 3
    (res,) = report["results"]
    rep = res["repeats"]
    assert rep["n"] == 3 and rep["requested"] == 3 and len(rep["samples_per_sec"]) == 3
    intervals = res["throughput"]["intervals"]
    assert [i["repeat"] for i in intervals] == [1] * 5 + [2] * 5 + [3] * 5
    for index, rate in enumerate(rep["samples_per_sec"], 1):
        mine = [i for i in intervals if i["repeat"] == index]
        assert rate == pytest.approx(sum(i["samples"] for i in mine) /
                                     sum(i["seconds"] for i in mine))
    assert rep["mean"] == pytest.approx(statistics.mean(rep["samples_per_sec"]))
    assert rep["ci95"][0] < rep["mean"] < rep["ci95"][1]
    assert rep["olympic_mean"] == pytest.approx(statistics.median(rep["samples_per_sec"]))
    # the pooled figure: every repeat's samples over every repeat's measured seconds
    assert res["measured_steps"] == 3 * 25
    assert res["throughput"]["samples_per_sec"] == pytest.approx(
        sum(i["samples"] for i in intervals) / sum(i["seconds"] for i in intervals))
    md = open(os.path.join(os.path.dirname(report_path), "report.md")).read()
    assert "## Repeats" in md and "(n=3)" in md
    # events: one run per count (the first repeat's)
    mllog = open(os.path.join(os.path.dirname(report_path), "events.mllog")).read()
    assert mllog.count('"key": "run_start"') == 1


@pytest.mark.core
def test_compare_pools_every_repeats_intervals(tmp_path, bench_run, tiny, tiny_case):
    from harness.reports.compare import compare_reports

    tiny_case["train"] = {"steps": 20, "warmup_steps": 5, "log_every": 5}
    tiny_case["repeat"] = 2
    a = bench_run(tiny_case, plugins=[tiny])
    b = bench_run(dict(tiny_case, repeat=1), plugins=[tiny])
    for outcome, label in ((a, "two"), (b, "one")):
        report = json.load(open(os.path.join(outcome.folder, "report.json")))
        report["environment"]["label"] = label
        with open(os.path.join(outcome.folder, "report.json"), "w") as fh:
            json.dump(report, fh)
    comparison = compare_reports([a.folder, b.folder], by="environment.label")
    (row,) = comparison["rows"]
    two, one = row["cells"]
    assert len(two["intervals"]) == 2 * 3 and len(one["intervals"]) == 3
    assert two["measurements"] == 2 and two["host_peak_bytes"] > 0


# --- the input pipeline ----------------------------------------------------------------------


def _shapes_case(**train) -> dict:
    return {"name": "shapes", "model": "resnext50", "batch_size": 32,
            "data": {"source": "tfrecord", "path": SHAPES},
            "train": {"steps": 24, "warmup_steps": 4, "log_every": 10, **train},
            "eval": {"at_end": False},
            "params": {"image_size": 32, "groups": 4, "width_per_group": 2, "base_width": 8,
                       "blocks": [1, 1, 1, 1], "num_classes": 4, "shuffle_buffer": 200}}


def test_input_only_report_on_the_shapes_tfrecords(bench_run):
    outcome = bench_run(_shapes_case(), input_only=True)
    report = outcome.report
    assert report["status"] == "ok" and report["input_only"] is True
    (result,) = report["results"]
    assert result["input_only"] is True and result["data_source"] == "tfrecord"
    assert result["measured_steps"] == 20  # warmup excluded, as in training
    assert [i["step"] for i in result["throughput"]["intervals"]] == [10, 20, 24]
    assert sum(i["samples"] for i in result["throughput"]["intervals"]) == 20 * 32
    assert result["throughput"]["samples_per_sec"] > 0
    assert result["flops_per_sample"] is None and result["accuracy"] == {}  # no model
    assert result["memory"]["host_peak_bytes"] > 0
    assert "input only" in _md(outcome)


def test_real_data_training_records_the_pipeline_rate_and_bound(bench_run):
    outcome = bench_run(_shapes_case(), overrides=["data.probe_steps=10"])
    (result,) = outcome.report["results"]
    assert result["status"] == "ok"
    pipeline = result["input_pipeline"]
    assert pipeline["steps"] == 10 and pipeline["samples_per_sec"] > 0
    train = result["throughput"]["samples_per_sec"]
    assert pipeline["bound"] is (train >= 0.9 * pipeline["samples_per_sec"])
    assert "## Input pipeline" in _md(outcome)


@eager_engine
@pytest.mark.core
def test_synthetic_data_is_not_probed_unless_asked(bench_run, tiny, tiny_case):
    result = bench_run(tiny_case, plugins=[tiny]).report["results"][0]
    assert "input_pipeline" not in result
    tiny_case["data"] = {"probe_steps": 8}
    result = bench_run(tiny_case, plugins=[tiny]).report["results"][0]
    assert result["input_pipeline"]["steps"] == 8


@eager_engine
@pytest.mark.core
def test_the_input_probe_does_not_change_the_training_it_measures(bench_run, tiny, tiny_case):
    """The probe reads its own pipeline and the seeds are set again after it: the same loss
    curve and accuracy as without it (before, the probe's ops moved the op seeds and the
    model started from other weights)."""
    tiny_case["train"] = {"steps": 20, "warmup_steps": 5, "log_every": 5}
    plain = bench_run(dict(tiny_case), plugins=[tiny]).report["results"][0]
    probed = bench_run(dict(tiny_case, data={"probe_steps": 8}),
                       plugins=[tiny]).report["results"][0]
    assert probed["input_pipeline"]["steps"] == 8 and "input_pipeline" not in plain
    assert probed["loss"]["curve"] == plain["loss"]["curve"]
    assert probed["accuracy"] == plain["accuracy"]


# --- checkpoints -----------------------------------------------------------------------------


def _ckpt_case(tiny_case, **params):
    tiny_case["train"] = {"steps": 40, "warmup_steps": 5, "log_every": 5, "checkpoint_every": 10}
    tiny_case["eval"] = {"at_end": True, "target": {"accuracy": 0.6}}
    tiny_case["params"] = params
    return tiny_case


@eager_engine
@pytest.mark.core
def test_a_resumed_run_continues_the_uninterrupted_one(bench_run, tiny, tiny_case):
    whole = bench_run(_ckpt_case(dict(tiny_case)), plugins=[tiny]).report["results"][0]
    cut = bench_run(_ckpt_case(dict(tiny_case), interrupt_at_step=25), plugins=[tiny])
    assert cut.report["status"] == "interrupted"
    index = json.load(open(os.path.join(cut.folder, "checkpoints", "devices_1", "index.json")))
    assert [e["step"] for e in index] == [10, 20]
    resumed = bench_run(_ckpt_case(dict(tiny_case)), plugins=[tiny], resume=cut.folder)
    assert resumed.report["status"] == "ok"
    result = resumed.report["results"][0]
    assert result["resumed_from"]["step"] == 20 and result["resumed_from"]["data_position"]
    # steps 21-25 are the resumed run's warmup, 26-40 measured; it ends where the whole run did
    assert result["measured_steps"] == 15
    assert [i["step"] for i in result["throughput"]["intervals"]] == [30, 35, 40]
    tail = {step: loss for step, loss in whole["loss"]["curve"]}
    for step, loss in result["loss"]["curve"]:  # the same batches and state: the same losses
        assert loss == pytest.approx(tail[step], rel=1e-5)
    assert result["accuracy"]["accuracy"] == pytest.approx(whole["accuracy"]["accuracy"])
    # and its own checkpoints carry on: 30 and 40, with training time since the first start
    own = json.load(open(os.path.join(resumed.folder, "checkpoints", "devices_1", "index.json")))
    assert [e["step"] for e in own] == [30, 40]
    assert own[0]["elapsed_s"] > index[-1]["elapsed_s"]
    assert "## Resumed" in _md(resumed)


@pytest.mark.core
def test_resume_without_a_checkpoint_is_bad_input(tmp_path, bench_run, bench_cli, tiny,
                                                  tiny_case):
    plain = bench_run(tiny_case, plugins=[tiny])
    path = write_case(tmp_path, tiny_case, "again.yaml")
    out = str(tmp_path / "again")
    result = bench_cli("run", path, "--plugin", "tiny_model", "--out", out,
                       "--resume", plain.folder)
    assert result.exit_code == 2
    assert "no checkpoint of 1 device(s)" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not os.path.exists(out)


@eager_engine
@pytest.mark.core
def test_bench_evaluate_gives_one_row_per_checkpoint(tmp_path, bench_run, bench_cli, tiny,
                                                     tiny_case):
    tiny_case = _ckpt_case(tiny_case)
    tiny_case["train"]["steps"] = 30
    trained = bench_run(tiny_case, plugins=[tiny])
    final = trained.report["results"][0]["accuracy"]["accuracy"]
    out = str(tmp_path / "evals")
    result = bench_cli("evaluate", trained.folder, "--out", out, "--plugin", "tiny_model")
    assert result.exit_code == 0, result.stderr
    (report_path,) = glob.glob(os.path.join(out, "*", "report.json"))
    report = json.load(open(report_path))
    assert report["kind"] == "evaluate" and report["status"] == "ok"
    assert report["evaluated"]["run_id"] == trained.report["run_id"]
    (res,) = report["results"]
    rows = res["checkpoint_evals"]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert [r["epoch"] for r in rows] == pytest.approx([10 / 64, 20 / 64, 30 / 64])
    assert all(r["checkpoint_time"] and 0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[-1]["accuracy"] == pytest.approx(final)  # the last checkpoint is the model
    met = [r for r in rows if r["accuracy"] >= 0.6]
    assert res["time_to_accuracy_s"] == (met[0]["elapsed_s"] if met else None)
    folder = os.path.dirname(report_path)
    md = open(os.path.join(folder, "report.md")).read()
    assert "## Checkpoints of 1 device(s)" in md
    assert "| step | epoch | accuracy | checkpoint time | trained s |" in md
    html = open(os.path.join(folder, "report.html")).read()
    assert "Checkpoints of 1 device(s)" in html and html.count("<td>") > 3 * 5


@pytest.mark.core
def test_bench_evaluate_of_a_run_without_checkpoints_is_bad_input(tmp_path, bench_run, bench_cli,
                                                                  tiny, tiny_case):
    plain = bench_run(tiny_case, plugins=[tiny])
    result = bench_cli("evaluate", plain.folder, "--out", str(tmp_path / "e"),
                       "--plugin", "tiny_model")
    assert result.exit_code == 2 and "no checkpoints" in result.stderr


# --- profiles --------------------------------------------------------------------------------


@eager_engine
@pytest.mark.core
def test_a_profile_window_writes_a_trace_outside_the_measured_window(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 40, "warmup_steps": 5, "log_every": 10}
    tiny_case["profile"] = {"start_step": 21, "steps": 4}
    outcome = bench_run(tiny_case, plugins=[tiny])
    result = outcome.report["results"][0]
    assert result["status"] == "ok"
    profile = result["profile"]
    assert profile["start_step"] == 21 and profile["end_step"] == 24 and profile["error"] is None
    traces = glob.glob(os.path.join(outcome.folder, "profile", "devices_1", "plugins", "profile",
                                    "*", "*.xplane.pb"))
    assert traces and os.path.getsize(traces[0]) > 0
    assert os.path.relpath(traces[0], outcome.folder) in profile["files"]  # TF 2.6 adds more
    # intervals are cut at the window's edges; the profiled steps 21-24 are not measured
    assert [i["step"] for i in result["throughput"]["intervals"]] == [10, 20, 30, 40]
    assert [i["steps"] for i in result["throughput"]["intervals"]] == [5, 10, 6, 10]
    assert result["measured_steps"] == 35 - 4
    assert "## Profile" in _md(outcome)


@pytest.mark.core
def test_profile_and_repeat_keys_are_checked(tmp_path, bench_cli, tiny_case):
    tiny_case["profile"] = {"start_step": 3}
    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--plugin", "tiny_model", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "profile.start_step: must be after the warmup" in result.stderr
    tiny_case.pop("profile")
    tiny_case["train"]["checkpoint_every"] = 10
    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--plugin", "tiny_model", "--out", str(tmp_path / "r"),
                       "--repeat", "2")
    assert result.exit_code == 2 and "repeat: checkpoints" in result.stderr


def test_repeat_default_case_key_is_one():
    from harness.case import Case

    assert Case().repeat == 1 and not Case().profile.enabled


# --- a process launch: memory per rank, repeats merged ----------------------------------------


def test_process_launch_records_memory_per_rank_and_merges_repeats(tmp_path, tiny_case):
    tiny_case.update(devices=[2], launcher="process", repeat=2,
                     train={"steps": 20, "warmup_steps": 5, "log_every": 5})
    path = write_case(tmp_path, tiny_case)
    env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "helpers")}
    proc = subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", "run",
                           path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report_path,) = glob.glob(str(tmp_path / "r" / "*" / "report.json"))
    (result,) = json.load(open(report_path))["results"]
    peaks = [rank["memory"]["host_peak_bytes"] for rank in result["ranks"]]
    assert len(peaks) == 2 and all(p and p > 50 * 2**20 for p in peaks)
    assert result["memory"]["host_peak_bytes"] == max(peaks)
    assert result["repeats"]["n"] == 2 and len(result["repeats"]["samples_per_sec"]) == 2
    assert result["measured_steps"] == 2 * 15
    assert [i["repeat"] for i in result["throughput"]["intervals"]] == [1] * 3 + [2] * 3


def test_bad_resume_folder_is_reported(tmp_path):
    from harness.run.checkpoints import resume_point

    with pytest.raises(BenchError, match="no checkpoint of 2 device"):
        resume_point(str(tmp_path), 2)


@pytest.mark.core
def test_boundaries_say_where_the_next_loop_must_end(tmp_path):
    from harness.run.profile import ProfileWindow

    window = ProfileWindow(21, 4, 100, str(tmp_path), str(tmp_path))
    assert [window.next_boundary(s) for s in (5, 20, 23, 24)] == [20, 24, 24, None]
    assert window.covers(21) and window.covers(24) and not window.covers(20)
    clipped = ProfileWindow(95, 10, 100, str(tmp_path), str(tmp_path))
    assert clipped.end == 100 and clipped.boundary(100)


# --- checkpoints, resume and profiles in loops of several steps --------------------------------


def _record_launches(monkeypatch):
    from harness.run.engine import EagerEngine

    launches = []
    original = EagerEngine.launch

    def launch(self, steps):
        launches.append(steps)
        return original(self, steps)

    monkeypatch.setattr(EagerEngine, "launch", launch)
    return launches


@eager_engine
@pytest.mark.core
def test_a_resumed_run_in_loops_continues_the_uninterrupted_one(bench_run, tiny, tiny_case,
                                                               monkeypatch):
    def case(**params):
        c = _ckpt_case(dict(tiny_case), **params)
        c["train"].update(steps_per_loop=5)
        return c

    whole = bench_run(case(), plugins=[tiny]).report["results"][0]
    cut = bench_run(case(interrupt_at_step=25), plugins=[tiny])
    assert cut.report["status"] == "interrupted"
    index = json.load(open(os.path.join(cut.folder, "checkpoints", "devices_1", "index.json")))
    assert [e["step"] for e in index] == [10, 20]
    launches = _record_launches(monkeypatch)
    resumed = bench_run(case(), plugins=[tiny], resume=cut.folder)
    assert resumed.report["status"] == "ok", resumed.report["results"][0].get("error")
    result = resumed.report["results"][0]
    assert result["resumed_from"]["step"] == 20
    assert launches == [5] * 4  # whole loops from step 20: the warmup's and three measured
    assert result["warmup_steps"] == 5 and result["measured_steps"] == 15
    assert [i["step"] for i in result["throughput"]["intervals"]] == [30, 35, 40]
    tail = {step: loss for step, loss in whole["loss"]["curve"]}
    for step, loss in result["loss"]["curve"]:
        assert loss == pytest.approx(tail[step], rel=1e-5)
    assert result["accuracy"]["accuracy"] == pytest.approx(whole["accuracy"]["accuracy"])
    own = json.load(open(os.path.join(resumed.folder, "checkpoints", "devices_1", "index.json")))
    assert [e["step"] for e in own] == [30, 40]
    times = result["time"]
    assert times["checkpoint_s"] > 0 and times["measured_s"] == pytest.approx(
        sum(i["seconds"] for i in result["throughput"]["intervals"]))
    assert sum(times.values()) == pytest.approx(result["wall_time_s"], rel=0.10), times
    md = _md(resumed)
    assert "## Time" in md and "| checkpoint s |" in md and "<h3>Time</h3>" in _html(resumed)


@eager_engine
@pytest.mark.core
def test_a_resumed_step_inside_a_loop_gets_a_shorter_first_loop(bench_run, tiny, tiny_case,
                                                                monkeypatch):
    tiny_case["eval"] = {"at_end": True}
    tiny_case["train"] = {"steps": 40, "warmup_steps": 5, "log_every": 5, "checkpoint_every": 5}
    tiny_case["params"] = {"interrupt_at_step": 15}
    cut = bench_run(dict(tiny_case), plugins=[tiny])  # one step per loop: saved at 5 and 10
    assert cut.report["status"] == "interrupted"
    tiny_case["params"] = {}
    tiny_case["train"] = {"steps": 40, "warmup_steps": 4, "log_every": 4, "steps_per_loop": 4}
    whole = bench_run(dict(tiny_case), plugins=[tiny]).report["results"][0]
    launches = _record_launches(monkeypatch)
    resumed = bench_run(dict(tiny_case), plugins=[tiny], resume=cut.folder)
    result = resumed.report["results"][0]
    assert result["status"] == "ok", result.get("error")
    assert result["resumed_from"]["step"] == 10
    # 10-12 realigns the loops; 12-16 ends the warmup; then whole loops as the whole run's
    assert launches == [2, 4] + [4] * 6
    assert result["warmup_steps"] == 6
    assert [i["step"] for i in result["throughput"]["intervals"]] == list(range(20, 41, 4))
    tail = {step: loss for step, loss in whole["loss"]["curve"]}
    for step, loss in result["loss"]["curve"]:
        assert loss == pytest.approx(tail[step], rel=1e-5)


@eager_engine
@pytest.mark.core
def test_a_checkpoint_and_profile_window_in_loops(bench_run, tiny, tiny_case, monkeypatch):
    launches = _record_launches(monkeypatch)
    tiny_case["train"] = {"steps": 40, "warmup_steps": 5, "log_every": 10, "steps_per_loop": 5,
                          "checkpoint_every": 15}
    tiny_case["profile"] = {"start_step": 21, "steps": 5}
    outcome = bench_run(tiny_case, plugins=[tiny])
    result = outcome.report["results"][0]
    assert result["status"] == "ok", result.get("error")
    assert launches == [5] * 8  # the edges are whole loops: no loop is cut
    index = json.load(open(os.path.join(outcome.folder, "checkpoints", "devices_1",
                                        "index.json")))
    assert [e["step"] for e in index] == [15, 30, 40]
    # synced at the checkpoints (15, 30) and the window's edges (20, 25); 21-25 not measured
    assert [i["step"] for i in result["throughput"]["intervals"]] == [10, 15, 20, 30, 40]
    assert result["measured_steps"] == 30
    assert result["profile"]["error"] is None and result["profile"]["files"]
    assert result["time"]["profile_s"] > 0 and result["time"]["checkpoint_s"] > 0


@pytest.mark.core
@pytest.mark.parametrize("extra, key", [
    ({"train": {"checkpoint_every": 6}}, "train.checkpoint_every"),
    ({"profile": {"start_step": 14, "steps": 4}}, "profile.start_step"),
    ({"profile": {"start_step": 13, "steps": 3}}, "profile.steps"),
])
def test_checkpoints_and_profiles_inside_a_loop_are_bad_input(tmp_path, bench_cli, tiny_case,
                                                               extra, key):
    tiny_case["train"].update(steps=40, warmup_steps=4, log_every=4, steps_per_loop=4)
    tiny_case["train"].update(extra.get("train", {}))
    if "profile" in extra:
        tiny_case["profile"] = extra["profile"]
    path = write_case(tmp_path, tiny_case)
    out = tmp_path / "r"
    result = bench_cli("run", path, "--plugin", "tiny_model", "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"bench: error: {path}: {key}: must be ")
    assert "train.steps_per_loop (4)" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists()


@eager_engine
@pytest.mark.core
@pytest.mark.parametrize("index, problem", [
    ('[{"step": 10, "path": "../../elsewhere"}]', "[0].path: expected a checkpoint name"),
    ('[{"path": "ckpt-10"}]', "[0].step: expected a step number, got None"),
    ('{"step": 10}', "expected a list of checkpoints"),
    ('[{"step": 10, "path": "ckpt-10"}', "not valid JSON"),
])
def test_a_bad_checkpoint_index_is_one_line_naming_it(tmp_path, bench_run, bench_cli, tiny,
                                                      tiny_case, index, problem):
    tiny_case["train"] = {"steps": 20, "warmup_steps": 5, "log_every": 5, "checkpoint_every": 10}
    trained = bench_run(tiny_case, plugins=[tiny])
    path = os.path.join(trained.folder, "checkpoints", "devices_1", "index.json")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(index)
    for args in (("evaluate", trained.folder), ("run", write_case(tmp_path, tiny_case),
                                                "--resume", trained.folder)):
        result = bench_cli(*args, "--out", str(tmp_path / "out"), "--plugin", "tiny_model")
        assert result.exit_code == 2, result.stderr
        assert result.stderr.startswith(f"bench: error: {path}: ") and problem in result.stderr
        assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.core
@pytest.mark.parametrize("key, value, problem", [
    ("memory", {"host_peak_bytes": "1 GiB"}, "results[0].memory.host_peak_bytes: expected a number"),
    ("repeats", {"n": 3}, "results[0].repeats.samples_per_sec: missing"),
    ("time", {"init_s": "slow"}, "results[0].time.init_s: expected a number"),
    ("profile", {"start_step": 3, "end_step": 4, "files": [1]},
     "results[0].profile.files[0]: expected a string"),
    ("checkpoint_evals", [{"step": 10, "accuracy": "high"}],
     "results[0].checkpoint_evals[0].accuracy: expected a number"),
])
def test_the_report_loader_checks_the_measurements(tmp_path, bench_run, bench_cli, tiny,
                                                   tiny_case, key, value, problem):
    outcome = bench_run(tiny_case, plugins=[tiny])
    path = os.path.join(outcome.folder, "report.json")
    report = json.load(open(path))
    report["results"][0][key] = value
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    result = bench_cli("report", outcome.folder)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"bench: error: {path}: {problem}")
    assert len(result.stderr.splitlines()) == 1

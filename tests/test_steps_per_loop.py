"""train.steps_per_loop (several steps per compiled call) and the time breakdown, on the CPU."""

from __future__ import annotations

import pytest
from engines import multi_device

from harness.testing import write_case

pytestmark = pytest.mark.core


def _run(bench_run, tiny, case, **train):
    case = {**case, "train": {**case["train"], **train}}
    report = bench_run(case, plugins=[tiny]).report
    assert report["status"] == "ok", [r.get("error") for r in report["results"]]
    return report


def test_a_loop_of_n_steps_trains_exactly_as_n_calls(bench_run, tiny, tiny_case):
    tiny_case["train"] = {"steps": 30, "warmup_steps": 5, "log_every": 10}
    tiny_case["params"] = {"weight_decay": 0.01}
    per_step = _run(bench_run, tiny, tiny_case, steps_per_loop=1)["results"][0]
    looped = _run(bench_run, tiny, tiny_case, steps_per_loop=5)["results"][0]
    # the same steps on the same data: every loss of the curve, and the final weights
    assert [s for s, _ in looped["loss"]["curve"]] == [10, 20, 30]
    for (_, a), (_, b) in zip(per_step["loss"]["curve"], looped["loss"]["curve"]):
        assert b == pytest.approx(a, rel=1e-6)
    assert looped["loss"]["first"] == pytest.approx(per_step["loss"]["first"], rel=1e-6)
    assert looped["weights_digests"] == per_step["weights_digests"]
    assert looped["measured_steps"] == per_step["measured_steps"] == 25


@multi_device
def test_loops_on_two_devices_keep_the_replicas_in_step(bench_run, tiny, tiny_case):
    tiny_case.update(devices=[2])
    report = _run(bench_run, tiny, tiny_case, steps=20, warmup_steps=4, log_every=8,
                  steps_per_loop=4)
    (result,) = report["results"]
    assert len(set(result["weights_digests"])) == 1 and len(result["weights_digests"]) == 2
    assert report["case"]["train"]["steps_per_loop"] == 4


def test_intervals_are_whole_loops_and_the_last_loop_may_be_shorter(bench_run, tiny, tiny_case):
    report = _run(bench_run, tiny, tiny_case, steps=22, warmup_steps=4, log_every=8,
                  steps_per_loop=4)
    result = report["results"][0]
    intervals = result["throughput"]["intervals"]
    # warmup = the first loop (steps 1-4); intervals end at 8, 16 and the last step
    assert [(i["step"], i["steps"]) for i in intervals] == [(8, 4), (16, 8), (22, 6)]
    assert result["measured_steps"] == 18 and result["warmup_steps"] == 4


def test_the_first_loop_is_outside_the_window_even_without_warmup(bench_run, tiny, tiny_case):
    result = _run(bench_run, tiny, tiny_case, steps=20, warmup_steps=0, log_every=5,
                  steps_per_loop=5)["results"][0]
    assert result["warmup_steps"] == 5 and result["measured_steps"] == 15
    assert [i["step"] for i in result["throughput"]["intervals"]] == [10, 15, 20]
    assert result["time"]["first_loop_s"] > 0


def test_the_time_breakdown_adds_up_to_the_wall_time(bench_run, tiny, tiny_case):
    # 30 ms steps (warmup steps 60 ms), so host work between intervals is a small share
    tiny_case["params"] = {"sleep_ms": 30.0, "warmup_sleep_ms": 60.0}
    tiny_case["eval"] = {"at_end": True, "every_steps": 15}
    result = _run(bench_run, tiny, tiny_case, steps=25, warmup_steps=10, log_every=5,
                  steps_per_loop=5)["results"][0]
    times = result["time"]
    assert set(times) == {"init_s", "probe_s", "first_loop_s", "warmup_s", "measured_s",
                          "eval_s", "checkpoint_s", "profile_s", "other_s"}
    # synthetic data: no input probe; no checkpoints, no profile window
    assert times["probe_s"] == times["checkpoint_s"] == times["profile_s"] == 0.0
    assert all(times[key] > 0 for key in times if key not in (
        "probe_s", "checkpoint_s", "profile_s")), times
    assert times["first_loop_s"] >= 5 * 0.060 and times["warmup_s"] >= 5 * 0.060
    measured = sum(i["seconds"] for i in result["throughput"]["intervals"])
    assert times["measured_s"] == pytest.approx(measured)
    assert [e["step"] for e in result["evals"]] == [15, 25]  # both in eval_s
    assert sum(times.values()) == pytest.approx(result["wall_time_s"], rel=0.10), times


@pytest.mark.parametrize("train, evaluation, key", [
    ({"log_every": 10, "warmup_steps": 8, "steps_per_loop": 4}, {}, "train.log_every"),
    ({"log_every": 8, "warmup_steps": 6, "steps_per_loop": 4}, {}, "train.warmup_steps"),
    ({"log_every": 8, "warmup_steps": 8, "steps_per_loop": 4}, {"every_steps": 10},
     "eval.every_steps"),
])
def test_steps_that_end_inside_a_loop_are_bad_input(bench_cli, tmp_path, tiny_case, train,
                                                    evaluation, key):
    tiny_case["train"].update(train)
    tiny_case["eval"].update(evaluation)
    path = write_case(tmp_path, tiny_case)
    out = tmp_path / "reports"
    result = bench_cli("run", path, "--out", str(out), "--plugin", "tiny_model")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"bench: error: {path}: {key}: must be a multiple of "
                                    f"train.steps_per_loop (4)")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_every_shipped_npu_case_fits_its_loops():
    """The npu default loop (log_every) divides each shipped NPU case's warmup and evals."""
    import glob
    import os

    from harness.devices.npu import NpuBackend
    from harness.plugins import load_plugins
    from harness.run.plan import load_cases, resolve_steps_per_loop

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    plugins = load_plugins()
    paths = sorted(glob.glob(os.path.join(root, "cases", "*.yaml"))
                   + glob.glob(os.path.join(root, "cases", "*.csv")))
    npu_cases = [c for path in paths for c in load_cases([path], [], plugins)
                 if c.device == "npu"]
    assert len(npu_cases) >= 6
    for case in npu_cases:
        resolved = resolve_steps_per_loop(case, NpuBackend)
        assert resolved.train.steps_per_loop == case.train.log_every

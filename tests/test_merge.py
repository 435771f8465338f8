"""The rank merge and the result type, as pure functions (no processes, no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from harness.run.result import (
    LaunchOutcome,
    RankOutcome,
    Result,
    Status,
    add_scaling_efficiency,
    merge_ranks,
    model_flops_utilization,
    worst_status,
)
from harness.run.throughput import Interval

pytestmark = pytest.mark.core

GLOBAL_BATCH = 64


def rank_result(rank: int, seconds: list[float], status: str = "ok", error: str | None = None,
                **extra) -> dict:
    """What a worker writes: its result with intervals of 10 steps of the global batch."""
    result = Result(devices=2, global_batch_size=GLOBAL_BATCH, data_source="synthetic",
                    warmup_steps=5, status=status, error=error, rank=rank,
                    flops_per_sample=1e9, peak_flops=2e12, **extra)
    result.set_intervals([Interval(10 * (i + 1), 10, 10 * GLOBAL_BATCH, s)
                          for i, s in enumerate(seconds)])
    return json.loads(json.dumps(result.to_dict()))  # as read back from its file


def template() -> Result:
    return Result(devices=2, global_batch_size=GLOBAL_BATCH, data_source="synthetic",
                  warmup_steps=5)


def test_each_interval_takes_the_slowest_ranks_time():
    ranks = [RankOutcome(0, rank_result(0, [1.0, 2.0, 1.0])),
             RankOutcome(1, rank_result(1, [1.5, 1.0, 1.0]))]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    assert merged.status is Status.OK
    assert [i["seconds"] for i in merged.throughput["intervals"]] == [1.5, 2.0, 1.0]
    assert merged.throughput["samples_per_sec"] == pytest.approx(30 * GLOBAL_BATCH / 4.5)
    assert merged.measured_steps == 30 and merged.workers == 2
    assert [r["rank"] for r in merged.ranks] == [0, 1]


def test_intervals_stop_where_the_shortest_rank_stopped():
    ranks = [RankOutcome(0, rank_result(0, [1.0, 1.0, 1.0])),
             RankOutcome(1, None, intervals=[
                 {"interval": {"step": 10, "steps": 10, "samples": 640, "seconds": 3.0},
                  "record": {"step": 10, "loss": 2.0, "mean_loss": 2.5}}])]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    assert [i["seconds"] for i in merged.throughput["intervals"]] == [3.0]
    assert merged.status is Status.FAILED and merged.error == "a worker wrote no result"


def test_mfu_is_recomputed_on_the_merged_throughput():
    ranks = [RankOutcome(0, rank_result(0, [1.0, 1.0])), RankOutcome(1, rank_result(1, [2.0, 2.0]))]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    rate = 20 * GLOBAL_BATCH / 4.0
    assert merged.mfu == pytest.approx(rate * 3 * 1e9 / 2e12)
    assert merged.mfu == model_flops_utilization(merged.throughput["samples_per_sec"], 1e9, 2e12)


def test_no_mfu_for_a_failed_merge():
    ranks = [RankOutcome(0, rank_result(0, [1.0])), RankOutcome(1, rank_result(1, [1.0]))]
    merged = merge_ranks(template(), ranks, LaunchOutcome(Status.TIMEOUT, "too slow"))
    assert merged.status is Status.TIMEOUT and merged.mfu is None and merged.error == "too slow"


@pytest.mark.parametrize("statuses, expected", [
    (["ok", "ok"], "ok"),
    (["ok", "diverged"], "diverged"),
    (["diverged", "failed"], "failed"),
    (["failed", "interrupted"], "interrupted"),
    (["timeout", "failed"], "timeout"),
])
def test_the_worst_rank_status_wins_when_all_exited_cleanly(statuses, expected):
    ranks = [RankOutcome(r, rank_result(r, [1.0], status=s, error=None if s == "ok" else f"r{r}"))
             for r, s in enumerate(statuses)]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    assert merged.status.value == expected
    if expected != "ok":
        assert merged.error in ("r0", "r1")


def test_a_crashed_ranks_own_status_explains_the_failure():
    ranks = [RankOutcome(0, rank_result(0, [1.0])),
             RankOutcome(1, rank_result(1, [1.0], status="diverged", error="loss is nan"),
                         exit_code=3)]
    outcome = LaunchOutcome(Status.FAILED, "rank 1 exited with code 3", failed_rank=1,
                            log_tail="...")
    merged = merge_ranks(template(), ranks, outcome)
    assert merged.status is Status.DIVERGED and merged.error == "rank 1: loss is nan"
    assert merged.failed_rank == 1 and merged.log_tail == "..."
    assert merged.ranks[1]["exit_code"] == 3


def test_a_rank_killed_without_a_result_keeps_the_launchers_reason():
    ranks = [RankOutcome(0, rank_result(0, [1.0])), RankOutcome(1, None, exit_code=-9)]
    outcome = LaunchOutcome(Status.FAILED, "rank 1 exited with code -9", failed_rank=1)
    merged = merge_ranks(template(), ranks, outcome)
    assert merged.status is Status.FAILED and merged.error == "rank 1 exited with code -9"


def test_loss_and_accuracy_are_rank_0s_and_digests_all_ranks():
    first = rank_result(0, [1.0], weights_digests=["aa"])
    first["loss"] = {"first": 3.0, "last": 1.0, "curve": [[10, 1.0]]}
    first["accuracy"] = {"top1": 0.5}
    ranks = [RankOutcome(0, first), RankOutcome(1, rank_result(1, [1.0], weights_digests=["aa"]))]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    assert merged.loss["last"] == 1.0 and merged.accuracy == {"top1": 0.5}
    assert merged.weights_digests == ["aa", "aa"]


def test_worst_status_and_scaling_efficiency():
    assert worst_status([]) is Status.FAILED
    assert worst_status(["ok", Status.OK]) is Status.OK
    one, two = Result(1, 32, "synthetic", 0), Result(2, 64, "synthetic", 0)
    for result, rate in ((one, 100.0), (two, 150.0)):
        result.set_intervals([Interval(10, 10, int(rate * 10), 10.0)])
        result.status = Status.OK
    add_scaling_efficiency([one, two])
    assert two.scaling_efficiency == pytest.approx(0.75) and one.scaling_efficiency == 1.0


def test_a_result_round_trips_through_json_and_omits_unset_extras():
    result = Result(1, 32, "synthetic", 2, status="diverged", error="loss is nan")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "diverged" and "ranks" not in data and "launcher" not in data
    back = Result.from_dict(data)
    assert back.status is Status.DIVERGED and back.to_dict() == result.to_dict()


def test_memory_per_rank_and_the_slowest_input_pipeline():
    def memory(host):
        return {"host_peak_bytes": host, "device_peak_bytes": None, "device_total_bytes": None,
                "host_source": "VmHWM (reset at the window start)", "device_source": None}

    def probe(rate):
        return {"samples_per_sec": 2 * rate, "per_pipeline_samples_per_sec": rate,
                "pipelines": 2, "steps": 20, "bound": None}

    ranks = [RankOutcome(0, rank_result(0, [1.0, 1.0], memory=memory(300),
                                        input_pipeline=probe(400.0))),
             RankOutcome(1, rank_result(1, [1.0, 1.0], memory=memory(500),
                                        input_pipeline=probe(70.0)))]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    assert [r["memory"]["host_peak_bytes"] for r in merged.ranks] == [300, 500]
    assert merged.memory["host_peak_bytes"] == 500
    assert merged.input_pipeline["samples_per_sec"] == 140.0  # rank 1's 70 x 2 pipelines
    assert merged.throughput["samples_per_sec"] == GLOBAL_BATCH * 10 / 1.0
    assert merged.input_pipeline["bound"] is True  # 640 samples/s >= 0.9 x 140


def test_repeats_are_recomputed_from_the_merged_intervals():
    def tagged(rank, seconds):
        result = Result.from_dict(rank_result(rank, []))
        result.set_intervals([Interval(10 * (i % 2 + 1), 10, 10 * GLOBAL_BATCH, s, i // 2 + 1)
                              for i, s in enumerate(seconds)])
        result.repeats = {"n": 2, "requested": 2}
        return json.loads(json.dumps(result.to_dict()))

    ranks = [RankOutcome(0, tagged(0, [1.0, 1.0, 2.0, 2.0])),
             RankOutcome(1, tagged(1, [2.0, 2.0, 1.0, 1.0]))]
    merged = merge_ranks(template(), ranks, LaunchOutcome())
    # each interval is the slower rank's: 2 s everywhere
    assert merged.repeats["samples_per_sec"] == [GLOBAL_BATCH * 10 / 2.0] * 2
    assert merged.repeats["n"] == 2 and merged.repeats["requested"] == 2

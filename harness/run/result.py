"""One result per device count: its type, its status, its one builder, the rank merge and MFU."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from harness.run.input_probe import input_bound
from harness.run.memory import empty_memory, max_memory
from harness.run.throughput import Interval, rates_by_repeat, repeat_statistics, summarize


class Status(str, enum.Enum):
    """A result's (and a report's) status; ``str`` so it is written to JSON as its value."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    RUNNING = "running"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """Which status wins when results (or ranks) are combined: the highest."""
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.RUNNING: 1, Status.DIVERGED: 2, Status.FAILED: 3,
             Status.TIMEOUT: 4, Status.INTERRUPTED: 5}
STOPS_RUN = (Status.INTERRUPTED, Status.TIMEOUT)  # later device counts are not started


def worst_status(statuses: list[Status | str]) -> Status:
    """The combined status: ok only when every one is ok; no statuses at all is a failure."""
    if not statuses:
        return Status.FAILED
    return max((Status(s) for s in statuses), key=lambda s: s.severity)


def model_flops_utilization(samples_per_sec: float | None, flops_per_sample: float | None,
                            peak_flops: float | None) -> float | None:
    """MFU = samples/s x 3 x forward FLOPs per sample / the devices' peak FLOP/s (a training
    step is forward plus backward, about 3x the forward FLOPs). None when any is unknown."""
    if not (samples_per_sec and flops_per_sample and peak_flops):
        return None
    return samples_per_sec * 3.0 * flops_per_sample / peak_flops


def _extra(default: Any = None) -> Any:
    """A key written to report.json only when set (process launches, worker-side facts)."""
    return field(default=default, metadata={"extra": True})


@dataclass
class Result:
    """The measurement of one device count (``results[i]`` of report.json)."""

    devices: int
    global_batch_size: int
    data_source: str
    warmup_steps: int
    measured_steps: int = 0
    throughput: dict[str, Any] = field(default_factory=dict)
    step_time_ms: dict[str, Any] = field(default_factory=dict)
    mfu: float | None = None
    peak_flops: float | None = None
    flops_per_sample: float | None = None
    scaling_efficiency: float | None = None
    loss: dict[str, Any] = field(default_factory=lambda: {"first": None, "last": None,
                                                          "curve": []})
    accuracy: dict[str, float] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)
    time_to_accuracy_s: float | None = None
    target_met: bool | None = None
    wall_time_s: float | None = None
    memory: dict[str, Any] = field(default_factory=empty_memory)
    # where the wall time went: building data and model, the input probe, the first compiled
    # call (tracing, compilation), the rest of the warmup, the measured window, evaluations,
    # checkpoint saves, profiled steps, and host work outside the window (log lines, event
    # sinks, weight digests, the CPU's peak probe, the input pipeline's teardown)
    time: dict[str, Any] = field(default_factory=lambda: {
        "init_s": None, "probe_s": 0.0, "first_loop_s": None, "warmup_s": None,
        "measured_s": 0.0, "eval_s": 0.0, "checkpoint_s": 0.0, "profile_s": 0.0,
        "other_s": 0.0})
    status: Status = Status.RUNNING
    error: str | None = None
    repeats: dict[str, Any] | None = _extra()
    input_only: bool | None = _extra()
    input_pipeline: dict[str, Any] | None = _extra()
    profile: dict[str, Any] | None = _extra()
    resumed_from: dict[str, Any] | None = _extra()
    checkpoint_evals: list[dict[str, Any]] | None = _extra()
    failed_in: str | None = _extra()  # build | train | eval, for a failed result
    faulty_plugin: str | None = _extra()  # the plugin that broke the contract (exit 2)
    served_by: dict[str, Any] | None = _extra()  # model hook -> the plugin that answered
    engine: str | None = None  # eager | graph (harness/run/engine.py)
    window: dict[str, Any] | None = _extra()
    weights_digests: list[str] | None = _extra()
    # a count run as worker processes
    launcher: str | None = _extra()
    workers: int | None = _extra()
    hosts: list[str] | None = _extra()
    ranks: list[dict[str, Any]] | None = _extra()
    failed_rank: int | None = _extra()
    log_tail: str | None = _extra()
    # written by a worker process for the parent's merge
    device_options: dict[str, Any] | None = _extra()  # what its backend resolved (device id)
    rank: int | None = _extra()
    pid: int | None = _extra()
    traceback: str | None = _extra()

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        if not self.throughput:
            self.set_intervals([])

    def set_intervals(self, intervals: list[Interval]) -> None:
        """The measured window: steps, throughput (all samples / all seconds), step times."""
        summary = summarize(intervals, self.devices)
        self.measured_steps = summary["measured_steps"]
        self.throughput = summary["throughput"]
        self.step_time_ms = summary["step_time_ms"]

    def intervals(self) -> list[Interval]:
        return [Interval.from_dict(i) for i in self.throughput.get("intervals", [])]

    def set_mfu(self) -> None:
        """MFU of an ok result from its own throughput, FLOPs and peak (the one place)."""
        ok = self.status is Status.OK
        self.mfu = model_flops_utilization(
            self.throughput.get("samples_per_sec") if ok else None, self.flops_per_sample,
            self.peak_flops)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("extra") and value is None:
                continue
            out[f.name] = value.value if isinstance(value, Status) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """A result as written by ``to_dict`` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def agreed_rank_options(results: list[Result]) -> dict[str, Any]:
    """The device options every worker rank of ``results`` resolved alike (e.g. the
    precision mode), for the report's ``device_options``; each rank's own (device id, rank)
    stay in its ``ranks`` entry."""
    seen = [rank["device_options"] for result in results for rank in (result.ranks or [])
            if rank.get("device_options")]
    if not seen:
        return {}
    return {key: value for key, value in seen[0].items()
            if all(key in other and other[key] == value for other in seen)}


def add_scaling_efficiency(results: list[Result]) -> None:
    """T_N / (N * T_1) against the 1-device result of the same report, where there is one."""
    base = next((r for r in results if r.devices == 1 and r.status is Status.OK
                 and r.throughput["samples_per_sec"]), None)
    for result in results:
        rate = result.throughput["samples_per_sec"]
        if base is None or not rate or result.status is not Status.OK:
            result.scaling_efficiency = None
        else:
            result.scaling_efficiency = rate / (result.devices * base.throughput["samples_per_sec"])


# --- the rank merge --------------------------------------------------------------------------


@dataclass
class RankOutcome:
    """What one worker process left: its result (None if it wrote none), its interval events
    (JSON lines streamed while it ran), and how its process ended."""

    rank: int
    result: dict[str, Any] | None
    intervals: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    pid: int | None = None
    log: str | None = None


@dataclass
class LaunchOutcome:
    """How the launcher saw the workers end: ``ok`` when all exited 0, else the first fault."""

    status: Status = Status.OK
    error: str | None = None
    failed_rank: int | None = None
    log_tail: str | None = None


def merge_ranks(template: Result, ranks: list[RankOutcome], outcome: LaunchOutcome) -> Result:
    """The result of one device count run as one process per device, from its ranks.

    Every step's global batch is processed by all ranks together, so an interval takes as
    long as its slowest rank: interval i of the merge has rank 0's step and samples (the
    global batch) and the largest of the ranks' seconds; throughput = global samples / that.
    Intervals stop where the rank with the fewest stopped. The status is the launcher's
    fault if there was one (a failed rank's own status when it recorded one), else the worst
    rank status; a rank without a result is a failure. Loss, accuracy and evaluations are
    rank 0's (every rank holds the same replicated model); MFU is recomputed on the merged
    throughput. Memory is each rank's in ``ranks`` and the largest of each figure in the result.
    """
    result = Result(devices=template.devices, global_batch_size=template.global_batch_size,
                    data_source=template.data_source, warmup_steps=template.warmup_steps,
                    launcher=template.launcher or "process", hosts=template.hosts,
                    workers=len(ranks))
    own = {r.rank: (Result.from_dict(r.result) if r.result is not None else None) for r in ranks}
    lists = []
    for rank in ranks:
        mine = own[rank.rank]
        lists.append([i.to_dict() for i in mine.intervals()] if mine is not None
                     else [e["interval"] for e in rank.intervals])
    depth = min((len(items) for items in lists), default=0)
    merged = []
    for i in range(depth):
        row = [items[i] for items in lists]
        merged.append(Interval(row[0]["step"], row[0]["steps"], row[0]["samples"],
                               max(item["seconds"] for item in row), row[0].get("repeat")))
    result.set_intervals(merged)
    if any(i.repeat is not None for i in merged):  # the ranks' slowest time per interval
        result.repeats = {**repeat_statistics(rates_by_repeat(merged)),
                          "requested": max((own[r.rank].repeats or {}).get("requested", 1)
                                           for r in ranks if own[r.rank] is not None)}

    status, error = outcome.status, outcome.error
    if status is Status.OK:
        statuses = [own[r.rank].status if own[r.rank] is not None else Status.FAILED
                    for r in ranks]
        status = worst_status(statuses)
        if status is not Status.OK:
            error = next((own[r.rank].error for r in ranks
                          if own[r.rank] is not None and own[r.rank].error),
                         "a worker wrote no result")
    elif status is Status.FAILED and outcome.failed_rank is not None:
        failed = own.get(outcome.failed_rank)
        if failed is not None and failed.status not in (Status.OK, Status.RUNNING):
            status = failed.status
            error = f"rank {outcome.failed_rank}: {failed.error}"
    result.status, result.error = status, error
    if status is not Status.OK:
        culprit = own.get(outcome.failed_rank) if outcome.failed_rank is not None else None
        culprit = culprit or next((own[r.rank] for r in ranks if own[r.rank] is not None
                                   and own[r.rank].status is not Status.OK), None)
        if culprit is not None:
            result.failed_in, result.faulty_plugin = culprit.failed_in, culprit.faulty_plugin
    result.failed_rank, result.log_tail = outcome.failed_rank, outcome.log_tail

    first = own[ranks[0].rank] if ranks else None
    if first is not None:
        result.engine = first.engine
        result.loss = first.loss
        result.accuracy, result.evals = first.accuracy, first.evals
        result.time_to_accuracy_s, result.target_met = first.time_to_accuracy_s, first.target_met
        result.flops_per_sample, result.peak_flops = first.flops_per_sample, first.peak_flops
        result.wall_time_s, result.time = first.wall_time_s, first.time
        result.warmup_steps = first.warmup_steps
        result.input_only, result.profile = first.input_only, first.profile
        result.resumed_from = first.resumed_from
        result.served_by = first.served_by
    elif ranks:
        records = [e["record"] for e in ranks[0].intervals]
        result.loss = {"first": records[0]["loss"] if records else None,
                       "last": records[-1]["loss"] if records else None,
                       "curve": [[r["step"], r["mean_loss"]] for r in records]}
    result.weights_digests = [d for r in ranks if own[r.rank] is not None
                              for d in (own[r.rank].weights_digests or [])]
    result.memory = max_memory([own[r.rank].memory for r in ranks if own[r.rank] is not None])
    result.input_pipeline = _merged_pipeline(result, [own[r.rank].input_pipeline for r in ranks
                                                      if own[r.rank] is not None])
    result.ranks = [{"rank": r.rank, "status": own[r.rank].status.value if own[r.rank] else None,
                     "exit_code": r.exit_code, "pid": r.pid, "log": r.log,
                     "memory": own[r.rank].memory if own[r.rank] else None,
                     **({"device_options": own[r.rank].device_options}
                        if own[r.rank] is not None and own[r.rank].device_options else {})}
                    for r in ranks]
    result.set_mfu()
    return result


def _merged_pipeline(result: Result, probes: list[dict[str, Any] | None]) -> dict | None:
    """The ranks' input probes as one: every rank feeds its share of each global batch, so
    the slowest rank's pipeline rate x the pipelines is what they deliver together."""
    probes = [p for p in probes if p and p.get("per_pipeline_samples_per_sec")]
    if not probes:
        return None
    slowest = min(p["per_pipeline_samples_per_sec"] for p in probes)
    merged = {**probes[0], "per_pipeline_samples_per_sec": slowest,
              "samples_per_sec": slowest * probes[0].get("pipelines", 1)}
    rate = result.throughput["samples_per_sec"] if result.status is Status.OK else None
    merged["bound"] = input_bound(rate, merged["samples_per_sec"])
    return merged

"""``bench import-log``: Ascend ModelZoo training logs (TF 1.15 era) -> a zoobench report.

ResNeXt-50 (``utils/logger.py``) prints ``step:  1000  epoch:  0.0  FPS:  741.5  loss: 6.797
total_loss: 8.258  lr:0.1000000`` every ``iterations_per_loop`` steps, FPS already global
(global batch x steps / time), then an eval table. BERT's Estimator prints
``global_step/sec: 2.451`` and ``global_step = N, masked_lm_loss = .., next_sentence_loss = ..,
total_loss = .. (T sec)``; its global rate is global_step/sec x batch x devices. As the
ModelZoo perf scripts do, the first ``skip`` (2) throughput lines are warmup and dropped.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.errors import BenchError
from harness.report import SCHEMA, argv_string, new_run_folder, now_iso
from harness.throughput import Interval, summarize

NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
RESNEXT_LINE = re.compile(rf"step:\s*(\d+)\s+epoch:\s*({NUM})\s+FPS:\s*({NUM})\s+loss:\s*({NUM})"
                          rf"\s+total_loss:\s*({NUM})\s+lr:\s*({NUM})")
EVAL_HEADER = re.compile(r"^\s*step\s+epoch\s+top1\s+top5\s+loss\s+checkpoint_time")
EVAL_ROW = re.compile(rf"^\s*(\d+)\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})(?:\s+(.*?))?\s*$")
# glog prefix "I0521 19:45:05.731803 281473752813584 file.py:692] ": its thread id tells
# the ranks apart when several ranks' output is interleaved in one file
GLOG = r"(?:[IWEF]\d{4} [\d:.]+\s+(\d+) [^\]]*\]\s*)?"
BERT_RATE = re.compile(rf"{GLOG}global_step/sec:\s*({NUM})")
BERT_STEP = re.compile(rf"{GLOG}global_step = (\d+), masked_lm_loss = ({NUM}), "
                       rf"next_sentence_loss = ({NUM}), total_loss = ({NUM})(?: \(({NUM}) sec\))?")
FORMATS = ("resnext50", "bert")


@dataclass
class ParsedLog:
    """What a log says: per-interval (end step, steps, global-batch-free rate), loss, evals."""

    rates: list[tuple[int, int, float]] = field(default_factory=list)  # step, steps, steps/s
    loss_curve: list[list[float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    rate_unit: str = "samples"  # resnext50 FPS are samples/s, bert global_step/sec steps/s


def _read(paths: list[str]) -> list[tuple[str, int, str]]:
    lines = []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines += [(path, i + 1, line.rstrip("\n")) for i, line in enumerate(fh)]
        except OSError as exc:
            raise BenchError(f"{path}: cannot read: {exc.strerror}") from None
    return lines


def parse_resnext50(paths: list[str]) -> ParsedLog:
    parsed = ParsedLog(rate_unit="samples")
    seen: dict[int, tuple] = {}
    evals: dict[int, dict[str, Any]] = {}
    in_table = False
    for _path, _lineno, line in _read(paths):
        if EVAL_HEADER.match(line):
            in_table = True
            continue
        if in_table:
            row = EVAL_ROW.match(line)
            if row:
                step = int(row.group(1))
                # the table prints percentages; zoobench metrics are fractions (top1 0.78)
                evals.setdefault(step, {"step": step, "elapsed_s": None,
                                        "top1": float(row.group(3)) / 100.0,
                                        "top5": float(row.group(4)) / 100.0,
                                        "loss": float(row.group(5))})
                continue
            in_table = False
        match = RESNEXT_LINE.search(line)
        if match:  # every rank prints the same cluster-wide line: the first one counts
            step = int(match.group(1))
            seen.setdefault(step, (float(match.group(3)), float(match.group(5))))
    previous = 0
    for step in sorted(seen):
        fps, total_loss = seen[step]
        parsed.rates.append((step, step - previous, fps))
        parsed.loss_curve.append([step, total_loss])
        previous = step
    parsed.evals = [evals[s] for s in sorted(evals)]
    return parsed


def parse_bert(paths: list[str]) -> ParsedLog:
    parsed = ParsedLog(rate_unit="steps")
    found: list[tuple[str, str | None, Any]] = []  # (kind, glog thread id, value) in order
    losses: dict[int, list[float]] = {}
    for _path, _lineno, line in _read(paths):
        hits = [(m.start(), "rate", m) for m in BERT_RATE.finditer(line)]
        hits += [(m.start(), "step", m) for m in BERT_STEP.finditer(line)]
        for _, kind, m in sorted(hits, key=lambda hit: hit[0]):
            if kind == "rate":
                found.append(("rate", m.group(1), float(m.group(2))))
            else:
                step = int(m.group(2))
                losses.setdefault(step, []).append(float(m.group(5)))
                found.append(("step", m.group(1), (step, float(m.group(6)) if m.group(6) else None)))
    # rates: one rank's lines only (the rank that printed the first rate line); every rank
    # prints the same global_step/sec. Losses: the mean over all ranks' lines of a step.
    rank = next((tid for kind, tid, _ in found if kind == "rate"), None)
    events = [(kind, value) for kind, tid, value in found if tid == rank]
    pairs = _pair(events)
    known = [b - a for (a, _, _), (b, _, _) in zip(pairs, pairs[1:]) if a is not None and b is not None]
    cadence = statistics.median(known) if known else None
    previous = None
    for step, rate, secs in pairs:
        if step is not None and previous is not None:
            steps = step - previous
        elif secs:
            steps = round(rate * secs)
        elif cadence:
            steps = int(cadence)
        else:
            raise BenchError(f"{', '.join(paths)}: cannot tell how many steps a global_step/sec "
                             f"line covers (no 'global_step = N, ... (T sec)' line)")
        step = step if step is not None else (previous or 0) + steps
        parsed.rates.append((step, steps, rate))
        previous = step
    parsed.loss_curve = [[s, sum(v) / len(v)] for s, v in sorted(losses.items())]
    return parsed


def _pair(events: list[tuple[str, Any]]) -> list[tuple[int | None, float, float | None]]:
    """Adjacent rate and step lines (either order) make one interval: (N, steps/s, T)."""
    pairs, i = [], 0
    while i < len(events):
        kind, value = events[i]
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is not None and {kind, nxt[0]} == {"rate", "step"}:
            rate = value if kind == "rate" else nxt[1]
            step, secs = nxt[1] if kind == "rate" else value
            pairs.append((step, rate, secs))
            i += 2
            continue
        if kind == "rate":
            pairs.append((None, value, None))
        i += 1
    return pairs


PARSERS = {"resnext50": parse_resnext50, "bert": parse_bert}


def build_report(paths: list[str], model: str, cann_version: str, devices: int,
                 batch_size: int, name: str | None = None, tensorflow: str | None = None,
                 device: str = "npu", precision: str = "mixed", data_source: str = "tfrecord",
                 skip: int = 2) -> dict[str, Any]:
    """The zoobench report of the run that ``paths`` logged."""
    if model not in PARSERS:
        raise BenchError(f"--model: unknown log format {model!r}; known: {', '.join(FORMATS)}")
    for option, value in (("--devices", devices), ("--batch-size", batch_size)):
        if value < 1:
            raise BenchError(f"{option}: must be >= 1, got {value}")
    if skip < 0:
        raise BenchError(f"--skip: must be >= 0, got {skip}")
    parsed = PARSERS[model](list(paths))
    where = ", ".join(paths)
    if len(parsed.rates) <= skip:
        what = "FPS" if model == "resnext50" else "global_step/sec"
        raise BenchError(f"{where}: found {len(parsed.rates)} {what} line(s); need more than "
                         f"the {skip} dropped as warmup (--skip)")
    global_batch = batch_size * devices
    intervals = []
    for step, steps, rate in parsed.rates[skip:]:
        samples_per_sec = rate if parsed.rate_unit == "samples" else rate * global_batch
        samples = steps * global_batch
        intervals.append(Interval(step, steps, samples, samples / samples_per_sec))
    warmup = parsed.rates[skip - 1][0] if skip else 0
    summary = summarize(intervals, devices)
    curve = parsed.loss_curve
    bad = next((p for p in curve if not math.isfinite(p[1])), None)
    result = {
        "devices": devices, "global_batch_size": global_batch, "data_source": data_source,
        "warmup_steps": warmup, "measured_steps": summary["measured_steps"],
        "throughput": summary["throughput"], "step_time_ms": summary["step_time_ms"],
        "mfu": None, "scaling_efficiency": None,
        "loss": {"first": curve[0][1] if curve else None, "last": curve[-1][1] if curve else None,
                 "curve": [p for p in curve if math.isfinite(p[1])]},
        "accuracy": {k: v for k, v in parsed.evals[-1].items() if k in ("top1", "top5")}
        if parsed.evals else {},
        "evals": parsed.evals, "time_to_accuracy_s": None, "target_met": None,
        "wall_time_s": None, "status": "diverged" if bad else "ok",
        "error": f"loss is {bad[1]} at step {bad[0]}" if bad else None,
    }
    if bad:
        result["loss"]["last"] = bad[1]
    last_step = parsed.rates[-1][0]
    case = {
        "name": name or f"{model}_{devices}p", "model": model, "device": device,
        "devices": [devices], "precision": precision, "batch_size": batch_size,
        "data": {"source": data_source, "path": None, "eval_path": None},
        "train": {"steps": last_step, "epochs": None, "warmup_steps": warmup,
                  "log_every": parsed.rates[-1][1]},
        "eval": {"at_end": bool(parsed.evals), "every_steps": None, "steps": None, "target": {}},
        "params": {}, "npu": {}, "launcher": "inline", "plugins": [], "seed": 0,
        "timeout": None, "description": f"imported from a ModelZoo {model} log",
        "source": where,
    }
    environment = {
        "python": None, "tensorflow": tensorflow, "keras": None, "harness": __version__,
        "plugins": {}, "device": {"type": device, "name": None, "count": devices},
        "cann_version": cann_version, "driver_version": None, "tfplugin_version": None,
        "host": None, "os": None, "cpu": None, "cpu_count": None, "git": None,
    }
    return {
        "schema": SCHEMA, "run_id": None, "status": result["status"], "started_at": None,
        "finished_at": None, "imported_at": now_iso(), "command": argv_string(),
        "imported_from": [os.path.abspath(p) for p in paths], "case": case,
        "device_options": {"precision": precision}, "environment": environment,
        "results": [result],
    }


def import_logs(paths: list[str], out: str, plugins: Any, **options: Any) -> tuple[dict, str]:
    """Parse, then write the report folder (report.json and every renderer's file)."""
    from harness.report import write_report

    report = build_report(list(paths), **options)
    run_id, folder = new_run_folder(out, report["case"]["name"])
    report["run_id"] = run_id
    write_report(folder, report, plugins)
    return report, folder

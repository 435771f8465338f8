"""One flat row per result: what the terminal table, report.md and report.html show."""

from __future__ import annotations

import re
from typing import Any

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b[^:]*: \S")

MEASUREMENT_NOTE = (
    "samples/s = global samples of the measured window / its wall time (warmup excluded); "
    "p5/p95 over per-interval rates; MFU = samples/s x 3 x forward FLOPs per sample / peak "
    "FLOP/s; scaling = T_N / (N x T_1); host peak = peak resident set of the process over "
    "the measured window, device peak = the largest allocator peak of one device."
)


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per result, shared by the terminal table and the Markdown report."""
    rows = []
    for r in report.get("results", []):
        tp = r.get("throughput", {})
        st = r.get("step_time_ms", {})
        memory = r.get("memory") or {}
        repeats = r.get("repeats") or {}
        pipeline = r.get("input_pipeline") or {}
        rows.append({
            "case": report["case"]["name"],
            "devices": r["devices"],
            "global_batch": r["global_batch_size"],
            # nothing measured (a checkpoint evaluation, a run that failed while building)
            "samples_per_sec": tp.get("samples_per_sec") if tp.get("intervals") else None,
            "per_device": tp.get("per_device") if tp.get("intervals") else None,
            "p5": tp.get("p5"),
            "p95": tp.get("p95"),
            "step_ms": st.get("median"),
            "mfu": r.get("mfu"),
            "scaling": r.get("scaling_efficiency"),
            "accuracy": r.get("accuracy") or {},
            "tta": r.get("time_to_accuracy_s"),
            "host_peak": memory.get("host_peak_bytes"),
            "device_peak": memory.get("device_peak_bytes"),
            "device_total": memory.get("device_total_bytes"),
            "repeats": repeats.get("n"),
            "ci95": repeats.get("ci95"),
            "stdev": repeats.get("stdev"),
            "input_rate": pipeline.get("samples_per_sec"),
            "input_bound": pipeline.get("bound"),
            "input_only": bool(r.get("input_only")),
            "status": r["status"],
        })
    return rows


def fmt_bytes(value: Any) -> str:
    """``1.25 GiB``, ``310 MiB``; ``-`` when unknown."""
    if value is None:
        return "-"
    value = float(value)
    if value >= 1024**3:
        return f"{value / 1024**3:.2f} GiB"
    return f"{value / 1024**2:.0f} MiB"


def fmt_memory(row: dict[str, Any]) -> str:
    """Host and device peak of a summary row: ``1.25 GiB / 3.10 of 32.00 GiB``."""
    device = fmt_bytes(row["device_peak"])
    if row["device_peak"] is not None and row["device_total"]:
        device = f"{device} of {fmt_bytes(row['device_total'])}"
    return f"{fmt_bytes(row['host_peak'])} / {device}"


def fmt_rate(row: dict[str, Any]) -> str:
    """samples/s, with ``± half the 95 % interval (n runs)`` for repeats, ``(input only)``."""
    text = fmt(row["samples_per_sec"])
    if row["ci95"] and len(row["ci95"]) == 2:  # [low, high]
        low, high = row["ci95"]
        text += f" ± {fmt((high - low) / 2)} (n={row['repeats']})"
    elif row["repeats"]:
        text += f" (n={row['repeats']})"
    if row["input_only"]:
        text += " input only"
    return text


def fmt_input(row: dict[str, Any]) -> str:
    """The input pipeline's own rate and whether training was bound by it."""
    if row["input_rate"] is None:
        return "-"
    bound = {True: "bound", False: "not bound", None: "?"}[row["input_bound"]]
    return f"{fmt(row['input_rate'])} ({bound})"


def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def reason(error: str | None) -> str:
    """One line for a result's ``error``: the line itself, or for a multi-line TensorFlow
    error (``UnknownError: Graph execution error:`` then the traced source) its type and the
    last exception line inside (``UnknownError: RuntimeError: injected failure``)."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    if not lines:
        return "no reason recorded"
    inner = [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
    if not inner:
        return lines[0]
    kind = lines[0].split(":", 1)[0]
    return f"{kind}: {inner[-1]}" if not inner[-1].startswith(kind) else inner[-1]


TIME_KEYS = ("init_s", "probe_s", "first_loop_s", "warmup_s", "measured_s", "eval_s",
             "checkpoint_s", "profile_s", "other_s")


def detail_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's extra tables as plain strings, for report.md and report.html alike:
    ``{"title", "headers", "rows", "note"}`` for repeats, checkpoint evaluations (the seed's
    step / epoch / metrics / checkpoint time layout), input pipelines, profiles, the time
    breakdown, resumes."""
    results = report.get("results", [])
    tables = []
    repeats = [(r["devices"], r["repeats"]) for r in results if r.get("repeats")]
    if repeats:
        rows = []
        for devices, rep in repeats:
            ci = rep.get("ci95")
            rows.append([str(devices), str(rep["n"]),
                         ", ".join(fmt(v) for v in rep["samples_per_sec"]) or "-",
                         fmt(rep.get("mean")), fmt(rep.get("stdev"), ".2f"),
                         f"{fmt(ci[0])}–{fmt(ci[1])}" if ci and len(ci) == 2 else "-",
                         fmt(rep.get("olympic_mean"))])
        tables.append({"title": "Repeats", "headers": [
            "devices", "n", "samples/s of each", "mean", "stdev", "95% CI (t)", "olympic mean"],
            "rows": rows, "note": "Each repeat builds its model afresh; samples/s of the "
                                  "results table pools every repeat's intervals."})
    for result in results:
        evals = result.get("checkpoint_evals")
        if evals is None:
            continue
        names = [k for row in evals for k in row
                 if k not in ("step", "epoch", "checkpoint_time", "elapsed_s", "checkpoint")]
        names = list(dict.fromkeys(names))
        rows = [[str(row["step"]), fmt(row.get("epoch"), ".2f"),
                 *[fmt(row.get(n), ".4f") for n in names], str(row.get("checkpoint_time") or "-"),
                 fmt(row.get("elapsed_s"))] for row in evals]
        tta = result.get("time_to_accuracy_s")
        note = (f"time to accuracy: {fmt(tta)} s of training" if tta is not None else
                "target not met" if result.get("target_met") is False else "")
        tables.append({"title": f"Checkpoints of {result['devices']} device(s)",
                       "headers": ["step", "epoch", *names, "checkpoint time", "trained s"],
                       "rows": rows, "note": note})
    pipelines = [r for r in results if r.get("input_pipeline")]
    if pipelines:
        rows = [[str(r["devices"]), fmt(r["input_pipeline"]["samples_per_sec"]),
                 fmt(r["throughput"].get("samples_per_sec")),
                 {True: "yes", False: "no", None: "-"}[r["input_pipeline"].get("bound")],
                 str(r["input_pipeline"].get("steps"))] for r in pipelines]
        tables.append({"title": "Input pipeline", "headers": [
            "devices", "pipeline alone samples/s", "training samples/s", "input-bound",
            "probe batches"], "rows": rows,
            "note": "input-bound: training reached >= 90% of the pipeline's own rate."})
    profiles = [r for r in results if r.get("profile")]
    if profiles:
        rows = [[str(r["devices"]), f"{p['start_step']}–{p['end_step']}", p.get("tool") or "-",
                 ", ".join(p.get("files") or []) or ("whole run" if p.get("whole_run") else "-"),
                 p.get("error") or ""] for r in profiles for p in [r["profile"]]]
        tables.append({"title": "Profile", "headers": ["devices", "steps", "tool", "trace",
                                                        "error"], "rows": rows,
                       "note": "Profiled steps are outside the measured window."})
    timed = [r for r in results if isinstance(r.get("time"), dict)
             and r["time"].get("init_s") is not None]
    if timed:
        keys = [k for k in TIME_KEYS if any(k in r["time"] for r in timed)]
        rows = [[str(r["devices"]), *[fmt(r["time"].get(k), ".2f") for k in keys],
                 fmt(r.get("wall_time_s"), ".2f")] for r in timed]
        tables.append({"title": "Time", "headers": [
            "devices", *[k[:-2].replace("_", " ") + " s" for k in keys], "wall s"],
            "rows": rows, "note": "Where the wall time went (the parts add up to it): see the "
                                  "README's report schema."})
    resumed = [r for r in results if r.get("resumed_from")]
    if resumed:
        rows = [[str(r["devices"]), str(r["resumed_from"]["step"]),
                 str(r["resumed_from"]["checkpoint"]),
                 "yes" if r["resumed_from"].get("data_position") else "no"] for r in resumed]
        tables.append({"title": "Resumed", "headers": ["devices", "from step", "checkpoint",
                                                        "input position restored"],
                       "rows": rows, "note": ""})
    return tables

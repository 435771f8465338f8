"""One flat row per result: what the terminal table, report.md and report.html show."""

from __future__ import annotations

import re
from typing import Any

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b[^:]*: \S")

MEASUREMENT_NOTE = (
    "samples/s = global samples of the measured window / its wall time (warmup excluded); "
    "p5/p95 over per-interval rates; MFU = samples/s x 3 x forward FLOPs per sample / peak "
    "FLOP/s; scaling = T_N / (N x T_1)."
)


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per result, shared by the terminal table and the Markdown report."""
    rows = []
    for r in report.get("results", []):
        tp = r.get("throughput", {})
        st = r.get("step_time_ms", {})
        rows.append({
            "case": report["case"]["name"],
            "devices": r["devices"],
            "global_batch": r["global_batch_size"],
            "samples_per_sec": tp.get("samples_per_sec"),
            "per_device": tp.get("per_device"),
            "p5": tp.get("p5"),
            "p95": tp.get("p95"),
            "step_ms": st.get("median"),
            "mfu": r.get("mfu"),
            "scaling": r.get("scaling_efficiency"),
            "accuracy": r.get("accuracy") or {},
            "tta": r.get("time_to_accuracy_s"),
            "status": r["status"],
        })
    return rows


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

"""Cross-report comparison: rows of like results, one column per ``--by`` value, verdicts.

A change is a regression only when the throughput drops by more than the threshold AND a
two-sided Mann-Whitney U test on the per-interval rates rejects "same distribution" at
``alpha``. Rows that cannot be compared (another global batch, synthetic vs real data, a
failed or missing result) are listed with the reason, never compared.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from harness.errors import BenchError
from harness.reports.store import find_reports, load_report, to_json
from harness.reports.summary import fmt

DEFAULT_BY = "environment.cann_version"
# What ``--by`` defaults to: the first of these whose values differ between the reports (the
# software stack first, then the code, the machine, and last the run itself).
AUTO_BY = ("environment.cann_version", "environment.tensorflow", "environment.tfplugin_version",
           "environment.driver_version", "environment.keras", "environment.python",
           "environment.harness", "environment.plugins", "environment.git.commit",
           "environment.device.name", "environment.host", "run_id")
TEST_NAME = "Mann-Whitney U, two-sided, on per-interval samples/s"
RowKey = tuple  # (model, case, data source, precision, devices)


def lookup(report: dict[str, Any], dotted: str, where: str) -> str:
    """The ``--by`` value of a report as a column label; a missing key is bad input."""
    value: Any = report
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise BenchError(f"{where}: --by {dotted}: no key {part!r} in this report")
        value = value[part]
    return value if isinstance(value, str) else to_json(value, indent=None)


def _value(report: dict[str, Any], dotted: str) -> str:
    """``lookup`` with a missing key read as the text ``(none)``."""
    try:
        return lookup(report, dotted, "")
    except BenchError:
        return "(none)"


def pick_by(reports: list[dict[str, Any]]) -> tuple[str, str]:
    """The default ``--by``: the first key of AUTO_BY whose values differ between the
    reports, and a sentence saying so (``run_id`` differs for any two runs)."""
    for key in AUTO_BY:
        values = list(dict.fromkeys(_value(r, key) for r in reports))
        if len(values) > 1:
            before = [k.split(".", 1)[-1] for k in AUTO_BY[:AUTO_BY.index(key)]]
            same = f"; {', '.join(before)} are the same in every report" if before else ""
            return key, f"the first key whose values differ: {', '.join(values[:4])}" + (
                ", ..." if len(values) > 4 else "") + same
    return AUTO_BY[0], "every report has the same values"


def _row_key(report: dict[str, Any], result: dict[str, Any]) -> RowKey:
    case = report["case"]
    source = result.get("data_source") or case["data"]["source"]
    return (case["model"], case["name"], source, case["precision"], result["devices"])


def _cell(column: str, entries: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One column's results of one row: pooled intervals, whole-window rate over all runs."""
    results = [r for _, r in entries]
    cell: dict[str, Any] = {"column": column, "runs": len(results),
                            "reports": [path for path, _ in entries]}
    bad = [r for r in results if r["status"] != "ok"]
    batches = sorted({r["global_batch_size"] for r in results})
    cell["global_batch_size"] = batches[0] if len(batches) == 1 else batches
    if bad:
        cell["problem"] = f"{bad[0]['status']} in {column}" + (
            f" ({bad[0]['error']})" if bad[0].get("error") else "")
    elif len(batches) > 1:
        cell["problem"] = f"runs of {column} differ in global batch ({batches})"
    intervals = [iv for r in results for iv in r["throughput"].get("intervals") or []]
    seconds = sum(iv["seconds"] for iv in intervals)
    if intervals and seconds > 0:
        rate = sum(iv["samples"] for iv in intervals) / seconds
    else:
        rates = [r["throughput"]["samples_per_sec"] for r in results
                 if r["throughput"].get("samples_per_sec")]
        rate = float(np.mean(rates)) if rates else None
    samples = [iv["samples_per_sec"] for iv in intervals]
    devices = results[0]["devices"]
    mfus = [r["mfu"] for r in results if r.get("mfu") is not None]
    cell.update({
        "samples_per_sec": rate,
        "per_device": rate / devices if rate and devices else None,
        "p5": float(np.percentile(samples, 5)) if samples else None,
        "p95": float(np.percentile(samples, 95)) if samples else None,
        "intervals": samples,
        "mfu": float(np.median(mfus)) if mfus else None,
        "accuracy": _median_metrics([r.get("accuracy") or {} for r in results]),
    })
    return cell


def _median_metrics(dicts: list[dict[str, float]]) -> dict[str, float]:
    names = [k for d in dicts for k, v in d.items() if v is not None]
    return {k: float(np.median([d[k] for d in dicts if d.get(k) is not None]))
            for k in dict.fromkeys(names)}


def verdict(base: dict[str, Any], cell: dict[str, Any], threshold: float,
            alpha: float) -> dict[str, Any]:
    """Change of ``cell`` against ``base`` in percent, the test's p-value and the verdict."""
    from scipy.stats import mannwhitneyu

    change = 100.0 * (cell["samples_per_sec"] - base["samples_per_sec"]) / base["samples_per_sec"]
    a, b = base["intervals"], cell["intervals"]
    p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue) if a and b else None
    if abs(change) <= threshold:
        name = "unchanged"
    elif p is None or not p < alpha:
        name = "not significant"
    else:
        name = "regression" if change < 0 else "improvement"
    return {"change_pct": change, "p_value": p, "verdict": name}


def compare_reports(paths: list[str], by: str | None = DEFAULT_BY, threshold: float = 5.0,
                    alpha: float = 0.01) -> dict[str, Any]:
    """Load every report under ``paths`` and build the comparison (a JSON-ready dict).
    ``by=None`` picks the key (:func:`pick_by`); ``by_reason`` says why."""
    if not (math.isfinite(threshold) and threshold >= 0):
        raise BenchError(f"--threshold: must be a finite number >= 0, got {threshold:g}")
    if not 0 < alpha < 1:
        raise BenchError(f"--alpha: must be between 0 and 1, got {alpha:g}")
    columns: list[str] = []
    grouped: dict[RowKey, dict[str, list[tuple[str, dict]]]] = {}
    runs: dict[tuple, str] = {}
    loaded = [(path, load_report(path)) for path in find_reports(list(paths))]
    reason = "given"
    if by is None:
        by, reason = pick_by([report for _, report in loaded])
    for path, report in loaded:
        column = lookup(report, by, path) if reason == "given" else _value(report, by)
        if column not in columns:
            columns.append(column)
        for result in report.get("results", []):
            key = _row_key(report, result)
            # a copy of a run pooled with itself doubles its intervals and fakes significance
            run = (key, column, report.get("run_id"), result["devices"])
            if run[2] is not None and run in runs:
                raise BenchError(f"{path}: run_id: {run[2]!r} is also the run of {runs[run]} "
                                 f"in column {column}; give each run once")
            runs[run] = path
            grouped.setdefault(key, {}).setdefault(column, []).append((path, result))
    if len(columns) < 2:
        raise BenchError(f"--by {by}: every report has the same value "
                         f"({columns[0] if columns else 'none'}); nothing to compare")
    rows = [_compare_row(key, grouped, columns, threshold, alpha) for key in grouped]
    return {
        "by": by, "by_reason": reason, "threshold_pct": threshold, "alpha": alpha, "test": TEST_NAME,
        "baseline": columns[0], "columns": columns, "rows": rows,
        "regressions": sum(r["verdict"] == "regression" for r in rows),
    }


def _compare_row(key: RowKey, grouped: dict, columns: list[str], threshold: float,
                 alpha: float) -> dict[str, Any]:
    model, case, source, precision, devices = key
    by_column = grouped[key]
    row: dict[str, Any] = {"model": model, "case": case, "data_source": source,
                           "precision": precision, "devices": devices, "cells": [],
                           "problems": []}
    cells = {c: _cell(c, by_column[c]) for c in columns if c in by_column}
    base = cells.get(columns[0])
    for column in columns:
        cell = cells.get(column)
        if cell is None:
            cell = {"column": column, "runs": 0, "problem": _missing(key, grouped, column)}
        elif column != columns[0] and "problem" not in cell:
            if base is None or "problem" in base:
                cell["problem"] = "no usable baseline"
            elif cell["global_batch_size"] != base["global_batch_size"]:
                cell["problem"] = (f"global batch {cell['global_batch_size']} in {column} vs "
                                   f"{base['global_batch_size']} in {columns[0]}")
            elif not cell["samples_per_sec"] or not base["samples_per_sec"]:
                cell["problem"] = "no throughput"
            else:
                cell.update(verdict(base, cell, threshold, alpha))
        if column == columns[0] and "problem" not in cell:
            cell["verdict"] = "baseline"
        if "problem" in cell:
            cell["verdict"] = "not comparable"
            row["problems"].append(cell["problem"])
        row["cells"].append(cell)
    order = ["regression", "not comparable", "not significant", "improvement", "unchanged",
             "baseline"]
    row["verdict"] = min((c["verdict"] for c in row["cells"]), key=order.index)
    row["global_batch_size"] = (base or next(iter(cells.values()), {})).get("global_batch_size")
    return row


def _missing(key: RowKey, grouped: dict, column: str) -> str:
    """Why a row has no result in ``column``: the same case on other data, or none at all."""
    model, case, source, precision, devices = key
    for other, by_column in grouped.items():
        if other != key and other[:2] == (model, case) and other[3:] == (precision, devices) \
                and column in by_column:
            why = f"data source {other[2]} in {column}, {source} here"
            if "synthetic" in (other[2], source):
                why += ": synthetic and real data are never compared"
            return why
    return f"missing in {column}"


# --- text renderers ------------------------------------------------------------------------


def row_label(row: dict[str, Any]) -> str:
    return (f"{row['case']} ({row['model']}, {row['data_source']}, {row['precision']}, "
            f"{row['devices']} dev, batch {row['global_batch_size']})")


def cell_lines(cell: dict[str, Any]) -> list[str]:
    """A cell as short lines: rate, per device and MFU, accuracy, change and verdict."""
    if cell.get("runs", 0) == 0 or cell.get("samples_per_sec") is None:
        return [f"- ({cell.get('problem', 'no result')})"]
    runs = f" ({cell['runs']} runs)" if cell["runs"] > 1 else ""
    lines = [f"{fmt(cell['samples_per_sec'])} samples/s{runs}",
             f"{fmt(cell['per_device'])}/device, MFU {fmt(cell['mfu'], '.2%')}"]
    if cell.get("accuracy"):
        lines.append(", ".join(f"{k} {fmt(v, '.4f')}" for k, v in cell["accuracy"].items()))
    if "change_pct" in cell:
        p = "-" if cell["p_value"] is None else f"{cell['p_value']:.2g}"
        lines.append(f"{cell['change_pct']:+.1f}% (p={p}) {cell['verdict']}")
    elif cell["verdict"] == "not comparable":
        lines.append(f"not comparable: {cell['problem']}")
    return lines


def render_markdown(comparison: dict[str, Any]) -> str:
    cols = comparison["columns"]
    lines = [f"# zoobench comparison by {_md(comparison['by'])}", "",
             f"Baseline: **{_md(comparison['baseline'])}**. Regression: samples/s down by more "
             f"than {comparison['threshold_pct']:g}% and {comparison['test']} p < "
             f"{comparison['alpha']:g}. Regressions flagged: **{comparison['regressions']}**.", "",
             "| row | " + " | ".join(_md(c) for c in cols) + " | verdict |",
             "|---|" + "---|" * len(cols) + "---|"]
    for row in comparison["rows"]:
        cells = [_md(" · ".join(cell_lines(c))) for c in row["cells"]]
        problems = f": {'; '.join(row['problems'])}" if row["problems"] else ""
        lines.append(f"| {_md(row_label(row))} | " + " | ".join(cells)
                     + f" | {_md(row['verdict'] + problems)} |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text for a Markdown table cell: HTML escaped (Markdown passes raw HTML through),
    pipes escaped, one line."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def render_json(comparison: dict[str, Any]) -> str:
    return to_json(comparison) + "\n"


def rich_table(comparison: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    styles = {"regression": "bold red", "improvement": "green", "not comparable": "yellow",
              "not significant": "dim"}
    # Text, not markup, everywhere: case names, --by values and log strings may hold [brackets]
    table = Table(title=Text(f"zoobench comparison by {comparison['by']} (baseline "
                             f"{comparison['baseline']}; regression: < "
                             f"-{comparison['threshold_pct']:g}% and p < {comparison['alpha']:g})"),
                  show_lines=True)
    table.add_column("row")
    for column in comparison["columns"]:
        table.add_column(Text(column), justify="right")
    table.add_column("verdict")
    for row in comparison["rows"]:
        cells = [Text("\n".join(cell_lines(c))) for c in row["cells"]]
        problems = "\n" + "\n".join(row["problems"]) if row["problems"] else ""
        # Text, not markup: case names and log strings may hold [brackets]
        table.add_row(Text(row_label(row)), *cells, Text(row["verdict"] + problems),
                      style=styles.get(row["verdict"]))
    return table

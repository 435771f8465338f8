"""Builtin report renderers: report.md (the HTML report registers the same way)."""

from __future__ import annotations

import html
from typing import Any

from harness.markers import hookimpl
from harness.reports.summary import MEASUREMENT_NOTE, fmt, summary_rows


def md(value: Any) -> str:
    """A string from a case, log or report as Markdown text: HTML escaped (Markdown passes
    raw HTML through to the page), table pipes escaped, on one line."""
    text = html.escape("" if value is None else str(value), quote=False)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    case, env = report["case"], report.get("environment") or {}
    device = env.get("device") or {}
    lines = [
        f"# zoobench report: {md(case['name'])}",
        "",
        f"- run: {md(report.get('run_id'))} — status **{md(report['status'])}**",
        f"- model: {md(case['model'])} — device: {md(device.get('type', case['device']))} "
        f"({md(device.get('name') or 'unknown')}) — precision: {md(case['precision'])} — "
        f"data: {md(case['data']['source'])}",
        f"- started {md(report.get('started_at'))}, finished {md(report.get('finished_at'))}",
        f"- TensorFlow {md(env.get('tensorflow'))}, Keras {md(env.get('keras'))}, "
        f"harness {md(env.get('harness'))}, Python {md(env.get('python'))}"
        + (f", CANN {md(env['cann_version'])}" if env.get("cann_version") else ""),
        f"- host {md(env.get('host'))}, CPU {md(env.get('cpu'))}",
        "",
        "| devices | global batch | samples/s | per device | p5–p95 | step ms | MFU | scaling "
        "| accuracy | TTA s | status |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---|",
    ]
    for row in summary_rows(report):
        acc = ", ".join(f"{md(k)} {fmt(v, '.4f')}" for k, v in row["accuracy"].items()) or "-"
        lines.append(
            f"| {row['devices']} | {row['global_batch']} | {fmt(row['samples_per_sec'])} | "
            f"{fmt(row['per_device'])} | {fmt(row['p5'])}–{fmt(row['p95'])} | "
            f"{fmt(row['step_ms'], '.2f')} | {fmt(row['mfu'], '.2%')} | "
            f"{fmt(row['scaling'], '.2f')} | {acc} | {fmt(row['tta'])} | {md(row['status'])} |")
    errors = [(r["devices"], r["error"]) for r in report.get("results", []) if r.get("error")]
    if report.get("error"):
        errors.append(("run", report["error"]))
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {devices} device(s): {md(error)}" if devices != "run" else f"- run: {md(error)}"
                  for devices, error in errors]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {md(note)}" for note in report["notes"]]
    lines += ["", f"_{MEASUREMENT_NOTE}_", ""]
    return "\n".join(lines)


@hookimpl
def register_report_writers(registry: Any) -> None:
    registry.add("report.md", render_markdown)

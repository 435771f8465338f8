"""Builtin report renderers: report.md (the HTML report registers the same way)."""

from __future__ import annotations

from typing import Any

from harness.markers import hookimpl
from harness.reports import summary
from harness.reports.summary import MEASUREMENT_NOTE, fmt, summary_rows


def render_markdown(report: dict[str, Any]) -> str:
    case, env = report["case"], report["environment"]
    device = env.get("device") or {}
    lines = [
        f"# zoobench report: {case['name']}",
        "",
        f"- run: `{report['run_id']}` — status **{report['status']}**",
        f"- model: {case['model']} — device: {device.get('type', case['device'])} "
        f"({device.get('name') or 'unknown'}) — precision: {case['precision']} — "
        f"data: {case['data']['source']}",
        f"- started {report['started_at']}, finished {report['finished_at']}",
        f"- TensorFlow {env.get('tensorflow')}, Keras {env.get('keras')}, "
        f"harness {env.get('harness')}, Python {env.get('python')}"
        + (f", CANN {env['cann_version']}" if env.get("cann_version") else ""),
        f"- host {env.get('host')}, CPU {env.get('cpu')}",
        "",
        "| devices | global batch | samples/s | per device | p5–p95 | step ms | MFU | scaling "
        "| memory host / device | input | accuracy | TTA s | status |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|---|---|---:|---|",
    ]
    for row in summary_rows(report):
        acc = ", ".join(f"{k} {v:.4f}" for k, v in row["accuracy"].items()) or "-"
        lines.append(
            f"| {row['devices']} | {row['global_batch']} | {summary.fmt_rate(row)} | "
            f"{fmt(row['per_device'])} | {fmt(row['p5'])}–{fmt(row['p95'])} | "
            f"{fmt(row['step_ms'], '.2f')} | {fmt(row['mfu'], '.2%')} | "
            f"{fmt(row['scaling'], '.2f')} | {summary.fmt_memory(row)} | {summary.fmt_input(row)} | {acc} | "
            f"{fmt(row['tta'])} | {row['status']} |")
    for table in summary.detail_tables(report):
        lines += ["", f"## {table['title']}", "",
                  "| " + " | ".join(table["headers"]) + " |",
                  "|" + "---|" * len(table["headers"])]
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in table["rows"]]
        if table["note"]:
            lines += ["", f"_{table['note']}_"]
    errors = [(r["devices"], r["error"]) for r in report.get("results", []) if r.get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {devices} device(s): `{error}`" for devices, error in errors]
    lines += ["", f"_{MEASUREMENT_NOTE}_", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@hookimpl
def register_report_writers(registry: Any) -> None:
    registry.add("report.md", render_markdown)

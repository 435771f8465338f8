"""report.html: one self-contained page per run (plots embedded as PNG, no network), and the
multi-report page of ``bench report --html``. Every string from a case, log or report is escaped."""

from __future__ import annotations

import html
import json
import statistics
from typing import Any

from harness.markers import hookimpl
from harness.reports.summary import MEASUREMENT_NOTE, fmt, summary_rows

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: .2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; vertical-align: top; }
th { background: #f4f6f8; } td.l, th.l { text-align: left; }
table.facts td, table.facts th { text-align: left; } table.facts th { width: 11em; }
.status { display: inline-block; padding: .1em .6em; border-radius: .8em; color: #fff;
          font-weight: bold; font-size: .9em; }
.ok, .unchanged { background: #2e7d32; } .failed, .diverged, .timeout, .interrupted,
.regression { background: #c62828; } .improvement { background: #1565c0; }
.baseline, .not-comparable, .not-significant { background: #757575; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots figure { margin: 0; }
.plots img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
code { background: #f3f3f3; padding: 0 .2em; } .note { color: #555; font-size: .88em; }
.error { color: #b71c1c; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def badge(text: str) -> str:
    return f'<span class="status {esc(text.replace(" ", "-"))}">{esc(text)}</span>'


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            f"<p class=\"note\">{esc(MEASUREMENT_NOTE)}</p>\n</body></html>\n")


def figure(uri: str | None, caption: str) -> str:
    if not uri:
        return ""
    return (f'<figure><img src="{uri}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(headers: list[str], rows: list[list[str]], left: tuple[int, ...] = ()) -> str:
    """``rows`` hold HTML already escaped by the caller; ``left`` columns align left."""
    head = "".join(f'<th{" class=l" if i in left else ""}>{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=l" if i in left else ""}>{cell}</td>'
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _accuracy(acc: dict[str, Any]) -> str:
    return esc(", ".join(f"{k} {fmt(v, '.4f')}" for k, v in acc.items()) or "-")


def _facts(report: dict[str, Any]) -> str:
    case, env = report["case"], report.get("environment") or {}
    device = env.get("device") or {}
    git = env.get("git") or {}
    facts = [
        ("run", report.get("run_id")), ("model", case.get("model")),
        ("device", f"{device.get('type', case.get('device'))} x{device.get('count', '?')} "
                   f"({device.get('name') or 'unknown'})"),
        ("precision", case.get("precision")), ("data", (case.get("data") or {}).get("source")),
        ("batch per device", case.get("batch_size")),
        ("started / finished", f"{report.get('started_at')} / {report.get('finished_at')}"
         if report.get("started_at") else None),
        ("imported at", report.get("imported_at")),
        ("TensorFlow / Keras", f"{env.get('tensorflow')} / {env.get('keras')}"),
        ("CANN / driver / tfplugin", f"{env.get('cann_version')} / {env.get('driver_version')} "
                                     f"/ {env.get('tfplugin_version')}"),
        ("harness / Python", f"{env.get('harness')} / {env.get('python')}"),
        ("host / CPU", f"{env.get('host')} / {env.get('cpu')}"),
        ("git", f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}" if git else None),
        ("command", report.get("command")),
    ]
    if report.get("imported_from"):
        facts.append(("imported from", ", ".join(report["imported_from"])))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts if v)
    return f'<table class="facts">{rows}</table>'


def _results_table(report: dict[str, Any]) -> str:
    rows = []
    for row in summary_rows(report):
        rows.append([esc(row["devices"]), esc(row["global_batch"]), esc(fmt(row["samples_per_sec"])),
                     esc(fmt(row["per_device"])), f"{esc(fmt(row['p5']))}–{esc(fmt(row['p95']))}",
                     esc(fmt(row["step_ms"], ".2f")), esc(fmt(row["mfu"], ".2%")),
                     esc(fmt(row["scaling"], ".2f")), _accuracy(row["accuracy"]),
                     esc(fmt(row["tta"])), badge(row["status"])])
    return table(["devices", "global batch", "samples/s", "per device", "p5–p95", "step ms",
                  "MFU", "scaling", "accuracy", "TTA s", "status"], rows, left=(8, 10))


def _evals_table(report: dict[str, Any]) -> str:
    rows = []
    for result in report.get("results", []):
        for ev in result.get("evals") or []:
            metrics = {k: v for k, v in ev.items() if k not in ("step", "elapsed_s")}
            rows.append([esc(result["devices"]), esc(ev.get("step")),
                         esc(fmt(ev.get("elapsed_s"))), _accuracy(metrics)])
    if not rows:
        return ""
    return "<h3>Evaluations</h3>" + table(["devices", "step", "elapsed s", "metrics"], rows,
                                          left=(3,))


def _plots(report: dict[str, Any]) -> str:
    from harness.reports import plots

    results = report.get("results", [])
    label = "{} device(s)".format
    figures = [
        figure(plots.loss_curves([(label(r["devices"]), (r.get("loss") or {}).get("curve") or [])
                                  for r in results]), "Loss curve (mean loss of each interval)"),
        figure(plots.interval_throughput(
            [(label(r["devices"]), r["throughput"].get("intervals") or [],
              r["throughput"].get("samples_per_sec")) for r in results]),
            "Throughput of each measured interval (dashed: the whole measured window)"),
        figure(plots.scaling_chart(
            [(report["case"]["name"], [(r["devices"], r["throughput"]["samples_per_sec"])
                                       for r in results if r["status"] == "ok"
                                       and r["throughput"].get("samples_per_sec")])]),
            "Scaling across device counts (dotted: linear from the smallest count; labels: "
            "efficiency)"),
    ]
    figures = [f for f in figures if f]
    return f'<div class="plots">{"".join(figures)}</div>' if figures else ""


def _json_details(title: str, value: Any) -> str:
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return f"<details><summary>{esc(title)}</summary><pre>{esc(text)}</pre></details>"


def report_section(report: dict[str, Any], heading: str = "h1") -> str:
    case = report["case"]
    parts = [f"<{heading}>zoobench report: {esc(case['name'])} {badge(report['status'])}"
             f"</{heading}>", _facts(report), "<h2>Results</h2>", _results_table(report)]
    errors = [(r["devices"], r["error"]) for r in report.get("results", []) if r.get("error")]
    if report.get("error"):
        errors.append(("run", report["error"]))
    if errors:
        parts.append("<h3>Errors</h3><ul>" + "".join(
            f'<li class="error">{esc(d)}: <code>{esc(e)}</code></li>' for d, e in errors) + "</ul>")
    parts += [_plots(report), _evals_table(report),
              _json_details("resolved case", case),
              _json_details("environment", report.get("environment")),
              _json_details("device options", report.get("device_options"))]
    return "\n".join(p for p in parts if p)


def render_html(report: dict[str, Any]) -> str:
    return page(f"zoobench report: {report['case']['name']}", report_section(report))


def comparable_key(report: dict[str, Any], result: dict[str, Any]) -> tuple:
    """What must match for results of several reports to lie on one scaling line: the model
    and its params, the per-device batch, the data source, precision, the launcher, the
    device, and the software stack. ``((name, value), ...)``, values as text."""
    case, env = report["case"], report.get("environment") or {}
    device = env.get("device") or {}
    fields = {
        "model": case["model"],
        "params": json.dumps(case.get("params") or {}, sort_keys=True, default=str),
        "batch": case["batch_size"],
        "data": result.get("data_source") or case["data"]["source"],
        "precision": case["precision"],
        "launcher": case.get("launcher", "auto"),
        "device": f"{device.get('type', case.get('device'))} {device.get('name') or ''}".strip(),
        "tensorflow": env.get("tensorflow"),
        "cann": env.get("cann_version"),
        "zoobench": env.get("harness"),
    }
    return tuple((name, str(value)) for name, value in fields.items())


def _series_labels(keys: list[tuple]) -> dict[tuple, str]:
    """A label per series key: model, batch, data, precision, then whatever differs."""
    labels = {}
    for key in keys:
        values = dict(key)
        label = (f"{values['model']} bs{values['batch']}/device {values['data']} "
                 f"{values['precision']}")
        extra = []
        for name, value in key:
            if name in ("model", "batch", "data", "precision"):
                continue
            if len({dict(k)[name] for k in keys}) < 2:
                continue
            if name == "params":
                others = [json.loads(dict(k)["params"]) for k in keys if k != key]
                mine = json.loads(value)
                differ = sorted(p for p in mine if any(o.get(p) != mine[p] for o in others))
                extra.append(", ".join(f"{p}={mine[p]}" for p in differ[:3]) or "params")
            else:
                extra.append(f"{name} {value}")
        labels[key] = label + (f" [{'; '.join(extra)}]" if extra else "")
    return labels


def render_html_many(reports: list[dict[str, Any]]) -> str:
    """Several reports on one page: a summary table, a scaling chart across reports (one line
    per set of comparable results: :func:`comparable_key`) and each report's own section."""
    from harness.reports import plots

    rows, scaling = [], {}
    for report in reports:
        case, env = report["case"], report.get("environment") or {}
        for row, result in zip(summary_rows(report), report.get("results", [])):
            rows.append([esc(case["name"]), esc(report.get("run_id")), esc(case["model"]),
                         esc(row["devices"]), esc(fmt(row["samples_per_sec"])),
                         esc(fmt(row["per_device"])), esc(fmt(row["mfu"], ".2%")),
                         _accuracy(row["accuracy"]), esc(env.get("tensorflow")),
                         esc(env.get("cann_version")), badge(row["status"])])
            if result["status"] == "ok" and result["throughput"].get("samples_per_sec"):
                key = comparable_key(report, result)
                scaling.setdefault(key, {}).setdefault(result["devices"], []).append(
                    result["throughput"]["samples_per_sec"])
    labels = _series_labels(list(scaling))
    series = [(labels[key], [(n, statistics.median(v)) for n, v in by_count.items()])
              for key, by_count in scaling.items()]
    body = [f"<h1>zoobench: {len(reports)} report(s)</h1>",
            table(["case", "run", "model", "devices", "samples/s", "per device", "MFU",
                   "accuracy", "TensorFlow", "CANN", "status"], rows, left=(0, 1, 2, 7, 8, 9, 10)),
            figure(plots.scaling_chart(series),
                   "Scaling across reports: one line per model, params, per-device batch, data, "
                   "precision, launcher, device and software stack (median of repeated runs "
                   "per device count)")]
    body += [report_section(r, heading="h2") for r in reports]
    return page("zoobench reports", "\n".join(b for b in body if b))


def render_comparison_html(comparison: dict[str, Any]) -> str:
    """``bench compare --format html``: the verdict table and a bar chart per row."""
    from harness.reports import plots
    from harness.reports.compare import cell_lines, row_label

    cols = comparison["columns"]
    rows, charts = [], []
    for row in comparison["rows"]:
        cells = ["<br>".join(esc(line) for line in cell_lines(c)) for c in row["cells"]]
        problems = "".join(f"<br>{esc(p)}" for p in row["problems"])
        rows.append([esc(row_label(row))] + cells + [badge(row["verdict"]) + problems])
        bars = [{"label": c["column"], "value": c.get("samples_per_sec"), "low": c.get("p5"),
                 "high": c.get("p95"), "verdict": c["verdict"]} for c in row["cells"]]
        charts.append(figure(plots.comparison_bars(row_label(row), bars),
                             f"{row_label(row)}: samples/s per {comparison['by']} "
                             f"(whiskers: p5–p95 of the interval rates)"))
    body = [f"<h1>zoobench comparison by <code>{esc(comparison['by'])}</code></h1>",
            f"<p>Baseline: <b>{esc(comparison['baseline'])}</b>. A regression is samples/s down "
            f"by more than {esc(format(comparison['threshold_pct'], 'g'))}% and "
            f"{esc(comparison['test'])} p &lt; {esc(format(comparison['alpha'], 'g'))}. "
            f"Regressions flagged: <b>{esc(comparison['regressions'])}</b>.</p>",
            table(["row"] + cols + ["verdict"], rows, left=(0, len(cols) + 1)),
            "<h2>Per row</h2>", f'<div class="plots">{"".join(c for c in charts if c)}</div>']
    return page(f"zoobench comparison by {comparison['by']}", "\n".join(body))


@hookimpl
def register_report_writers(registry: Any) -> None:
    registry.add("report.html", render_html)

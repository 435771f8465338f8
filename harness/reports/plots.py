"""Report plots as PNG data URIs (matplotlib's Agg canvas; no pyplot, no global backend)."""

from __future__ import annotations

import base64
import io
from typing import Any

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f"]
VERDICT_COLORS = {"baseline": "#7f7f7f", "regression": "#d62728", "improvement": "#2ca02c",
                  "unchanged": "#1f77b4", "not comparable": "#c7c7c7"}


def _label(text: Any) -> str:
    # '$' would start matplotlib's mathtext; case names and log strings are plain text
    return str(text).replace("$", r"\$")


def _figure(width: float = 5.2, height: float = 3.0) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _data_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_curves(series: list[tuple[str, list[list[float]]]]) -> str | None:
    """``[(label, [[step, loss], ...]), ...]`` -> one line per series."""
    # a diverged run's last points are null in report.json (NaN is not JSON)
    series = [(label, [p for p in curve if len(p) == 2 and None not in p])
              for label, curve in series]
    series = [(label, curve) for label, curve in series if curve]
    if not series:
        return None
    fig, ax = _figure()
    for i, (label, curve) in enumerate(series):
        ax.plot([p[0] for p in curve], [p[1] for p in curve], marker=".",
                color=PALETTE[i % len(PALETTE)], label=_label(label))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (interval mean)")
    ax.set_title("Loss")
    ax.legend(fontsize="small")
    return _data_uri(fig)


def interval_throughput(series: list[tuple[str, list[dict[str, Any]], float | None]]) -> str | None:
    """``[(label, intervals, window samples/s), ...]``: per-interval rates, window rate dashed."""
    series = [s for s in series if s[1]]
    if not series:
        return None
    fig, ax = _figure()
    for i, (label, intervals, window) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        ax.plot([iv["step"] for iv in intervals], [iv["samples_per_sec"] for iv in intervals],
                marker="o", markersize=3, color=color, label=_label(label))
        if window:
            ax.axhline(window, color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("step (interval end)")
    ax.set_ylabel("samples/s (global)")
    ax.set_title("Throughput per interval")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return _data_uri(fig)


def scaling_chart(series: list[tuple[str, list[tuple[int, float]]]]) -> str | None:
    """``[(label, [(devices, samples/s), ...]), ...]`` with the ideal linear line of each;
    only series with at least two device counts are drawn."""
    series = [(label, sorted(points)) for label, points in series if len({p[0] for p in points}) > 1]
    if not series:
        return None
    fig, ax = _figure()
    for i, (label, points) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        counts = [p[0] for p in points]
        rates = [p[1] for p in points]
        ax.plot(counts, rates, marker="o", color=color, label=_label(label))
        base_n, base_rate = points[0]
        ax.plot(counts, [base_rate * n / base_n for n in counts], linestyle=":", color=color,
                label=_label(f"{label} (ideal)"))
        for n, rate in points[1:]:
            ax.annotate(f"{rate / (base_rate * n / base_n):.0%}", (n, rate),
                        textcoords="offset points", xytext=(4, -12), fontsize="small")
    ax.set_xlabel("devices")
    ax.set_ylabel("samples/s (global)")
    ax.set_xticks(sorted({p[0] for _, pts in series for p in pts}))
    ax.set_title("Scaling")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return _data_uri(fig)


def comparison_bars(title: str, bars: list[dict[str, Any]]) -> str | None:
    """One bar per column: ``{label, value, low, high, verdict}`` (low/high: p5/p95 or None)."""
    bars = [b for b in bars if b.get("value")]
    if not bars:
        return None
    fig, ax = _figure(width=max(3.2, 1.2 * len(bars) + 1.5), height=2.8)
    xs = range(len(bars))
    values = [b["value"] for b in bars]
    colors = [VERDICT_COLORS.get(b.get("verdict"), PALETTE[0]) for b in bars]
    ax.bar(xs, values, color=colors)
    low = [max(0.0, b["value"] - b["low"]) if b.get("low") is not None else 0.0 for b in bars]
    high = [max(0.0, b["high"] - b["value"]) if b.get("high") is not None else 0.0 for b in bars]
    ax.errorbar(xs, values, yerr=[low, high], fmt="none", ecolor="black", capsize=3,
                linewidth=1)
    ax.set_xticks(list(xs), [_label(b["label"]) for b in bars], fontsize="small")
    ax.set_ylabel("samples/s")
    ax.set_title(_label(title), fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    ax.grid(False, axis="x")
    return _data_uri(fig)

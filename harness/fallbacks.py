"""Builtin fallbacks that step aside for any plugin (``trylast``): eval and the log line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.markers import hookimpl

if TYPE_CHECKING:
    from harness.case import Case
    from harness.context import RunContext


@hookimpl(trylast=True)
def evaluate(case: Case, model: Any, dataset: Any, ctx: RunContext) -> dict | None:
    """Run the ModelSpec's Keras metrics over the eval dataset."""
    spec = ctx.model_spec
    if spec is None or not spec.metrics:
        return None
    session = ctx.graph_session
    ctx.reset_metrics(spec.metrics)
    if session is None:
        for features, labels in dataset:
            outputs = model(features, training=False)
            for metric in spec.metrics:
                metric.update_state(labels, outputs)
        return {metric.name: float(metric.result()) for metric in spec.metrics}
    # Graph engine: the metrics' update ops run batch by batch in its session.
    def update(features: Any, labels: Any) -> Any:
        outputs = model(features, training=False)
        return [metric.update_state(labels, outputs) for metric in spec.metrics]

    for _ in ctx.map_batches(update, dataset):
        pass
    values = session.run([metric.result() for metric in spec.metrics])
    return {metric.name: float(v) for metric, v in zip(spec.metrics, values)}


@hookimpl(trylast=True)
def log_interval(case: Case, record: dict[str, Any]) -> str:
    epoch = f"  epoch {record['epoch']:.2f}" if record.get("epoch") is not None else ""
    lr = f"  lr {record['lr']:.7f}" if record.get("lr") is not None else ""
    return (f"step {record['step']:>6}/{record['total_steps']}{epoch}  "
            f"samples/s {record['samples_per_sec']:9.1f}  loss {record['loss']:.4f}{lr}")

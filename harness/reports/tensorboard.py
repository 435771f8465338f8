"""TensorBoard scalars of every run (loss, lr, samples/s, eval metrics) through tf.summary.

Eagerly (TF 2) ``tf.summary`` writes them; in graph mode (TF 1.x, the graph engine), where
``tf.summary`` would only add ops to the graph, TF 1's event file writer writes the same scalar
summaries (a float tensor with the ``scalars`` plugin's metadata, as tf.summary.scalar does)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from harness.markers import hookimpl

if TYPE_CHECKING:
    from harness.case import Case
    from harness.context import RunContext

FOLDER = "tensorboard"


class TensorBoardSink:
    """``<run folder>/tensorboard/devices_<N>/``: one TensorBoard run per device count."""

    def __init__(self, folder: str) -> None:
        self.root = os.path.join(folder, FOLDER)
        self.writer: Any = None
        self.graph_mode = False

    def run_start(self, case: Case, ctx: RunContext, total_steps: int, init_seconds: float) -> None:
        from harness import tfcompat
        from harness.tfcompat import tf

        logdir = os.path.join(self.root, f"devices_{ctx.devices}")
        self.graph_mode = not tfcompat.executes_eagerly()
        if self.graph_mode:
            self.writer = tf.compat.v1.summary.FileWriter(logdir)
        else:
            self.writer = tf.summary.create_file_writer(logdir)

    def _scalars(self, step: int, values: dict[str, float | None]) -> None:
        if self.writer is None:
            return
        from harness.tfcompat import tf

        if self.graph_mode:
            v1 = tf.compat.v1
            metadata = v1.SummaryMetadata(
                plugin_data=v1.SummaryMetadata.PluginData(plugin_name="scalars"))
            summary = v1.Summary(value=[
                v1.Summary.Value(tag=name, metadata=metadata,
                                 tensor=tf.compat.v1.make_tensor_proto(float(value), tf.float32))
                for name, value in values.items() if value is not None])
            self.writer.add_summary(summary, step)
            self.writer.flush()
            return
        with self.writer.as_default():
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(name, float(value), step=step)

    def interval(self, record: dict[str, Any], interval: dict[str, Any]) -> None:
        self._scalars(interval["step"], {
            "train/loss": record.get("mean_loss"),
            "train/learning_rate": record.get("lr"),
            "train/samples_per_sec": interval["samples_per_sec"],
            "train/step_time_ms": 1000.0 * interval["seconds"] / interval["steps"],
        })

    def evaluate(self, step: int, metrics: dict[str, float], seconds: float) -> None:
        self._scalars(step, {f"eval/{name}": value for name, value in metrics.items()})

    def run_stop(self, result: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self, status: str) -> None:
        self.run_stop({})


@hookimpl
def run_event_sink(case: Case, folder: str) -> TensorBoardSink:
    return TensorBoardSink(folder)

"""What the model hooks receive (RunContext) and what build_model returns (ModelSpec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass
class ModelSpec:
    """A model plugin's answer to ``build_model``.

    ``loss(labels, outputs)`` returns one loss per example (shape ``[batch]``); the runner
    averages it over the *global* batch, so the gradients are the same on 1 or N devices.
    ``flops_per_sample`` is the forward pass's FLOPs for one sample (MFU uses 3x that for a
    training step); leave it None when unknown and the report's MFU stays empty.
    """

    model: Any
    loss: Callable[[Any, Any], Any]
    optimizer: Any
    metrics: list = field(default_factory=list)
    flops_per_sample: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class RunContext:
    """Facts about the run that a model hook needs to build its part.

    The dataset of ``build_dataset`` yields ``(features, labels)`` batches of
    ``pipeline_batch_size`` examples: the global batch divided among the input pipelines
    (one per worker process). ``shard(dataset)`` splits file or example streams between those
    pipelines; the runner distributes each batch over the local devices itself.
    """

    devices: int
    batch_size: int
    global_batch_size: int
    num_input_pipelines: int = 1
    input_pipeline_id: int = 0
    strategy: Any = None
    compute_dtype: str = "float32"
    variable_dtype: str = "float32"
    seed: int = 0
    train_steps: int = 0
    steps_per_epoch: int | None = None
    device_type: str = "cpu"
    rank: int = 0
    model_spec: ModelSpec | None = None
    options: dict = field(default_factory=dict)
    graph_session: Any = None  # the graph engine's tf.compat.v1.Session; None when eager
    loss_scale: Any = None  # the graph engine's loss scale (a tensor) where it scales the loss
    deferred_assignments: list = field(default_factory=list)

    def assign(self, variable: Any, value: Any) -> None:
        """Set ``variable`` to ``value`` (NumPy; e.g. a checkpoint's): at once when eager, and
        under the graph engine as soon as its session has initialized the variables."""
        from harness import tfcompat

        if tfcompat.executes_eagerly():
            variable.assign(value)
        else:
            self.deferred_assignments.append((variable, value))

    def numpy(self, value: Any) -> Any:
        """The NumPy value of a tensor or variable, or a list of them (``.numpy()`` eagerly;
        one run of the graph engine's session otherwise); other values pass through."""
        if self.graph_session is None:
            if isinstance(value, (list, tuple)):
                return [self.numpy(v) for v in value]
            return value.numpy() if hasattr(value, "numpy") else value
        if isinstance(value, (list, tuple)) or hasattr(value, "graph"):
            return self.graph_session.run(value)
        return value

    def reset_metrics(self, metrics: list) -> None:
        """Zero the state of Keras metrics (``reset_state`` eagerly; in the graph engine's
        session otherwise, where Keras would reset them in a session of its own)."""
        if self.graph_session is None:
            for metric in metrics:  # reset_states: Keras before 2.5
                (getattr(metric, "reset_state", None) or metric.reset_states)()
            return
        from harness.tfcompat import tf

        self.graph_session.run(tf.compat.v1.variables_initializer(
            [v for metric in metrics for v in metric.variables]))

    def map_batches(self, fn: Callable[..., Any], dataset: Any) -> Iterator[Any]:
        """``fn(*batch)`` for every batch of ``dataset``, as NumPy values: the way an
        ``evaluate`` hook runs its model so that it works on either engine. Eagerly ``fn`` is
        one ``tf.function`` (traced once for batches of varying size); under the graph engine
        its ops are built once in the engine's graph and run in its session."""
        from harness import tfcompat
        from harness.tfcompat import tf

        if self.graph_session is None:
            compiled = tfcompat.relaxed_function(fn)
            for batch in dataset:
                out = compiled(*batch) if isinstance(batch, tuple) else compiled(batch)
                yield tf.nest.map_structure(lambda t: t.numpy(), out)
            return
        iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
        outputs = fn(*batch) if isinstance(batch, tuple) else fn(batch)
        self.graph_session.run(iterator.initializer)
        while True:
            try:
                yield self.graph_session.run(outputs)
            except tf.errors.OutOfRangeError:
                return

    @property
    def pipeline_batch_size(self) -> int:
        return self.global_batch_size // self.num_input_pipelines

    def shard(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """This pipeline's share of ``dataset`` (whole when there is one pipeline)."""
        if self.num_input_pipelines <= 1:
            return dataset
        return dataset.shard(self.num_input_pipelines, self.input_pipeline_id)

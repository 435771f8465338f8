"""The runner's checks of what plugins hand it: full train batches, a per-example loss, eval
metrics that hold the target's. Each failure is one line naming the plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness.errors import PluginError

if TYPE_CHECKING:
    from harness.case import Case
    from harness.context import RunContext


def check_train_batches(dataset: Any, ctx: RunContext, plugin: str) -> None:
    """Every train batch must hold ``ctx.pipeline_batch_size`` examples: the runner counts
    each step as that many samples, so a short last batch (``drop_remainder=False``) or
    ragged batches would be counted as full ones. The dataset's static shapes must say so."""
    from harness.tfcompat import tf

    want = ctx.pipeline_batch_size
    for path, spec in _flat_specs(dataset.element_spec):
        shape = getattr(spec, "shape", None)
        if shape is None:
            continue
        if shape.rank is None:
            lead = None
        elif shape.rank == 0:
            continue  # a per-batch scalar, not examples
        else:
            lead = tf.compat.dimension_value(shape[0])
        if lead != want:
            got = "of unknown size" if lead is None else f"of {lead} examples"
            raise PluginError(plugin, f"build_dataset('train'): the batches of {path} are {got}, "
                                      f"not ctx.pipeline_batch_size ({want}); the runner counts "
                                      f"every step as a full batch, so batch with "
                                      f"drop_remainder=True")


def _flat_specs(element_spec: Any) -> list[tuple[str, Any]]:
    """(name, TypeSpec) of each component: ``features``, ``labels['mask']``, ..."""
    if isinstance(element_spec, tuple) and len(element_spec) == 2:
        items = [("features", element_spec[0]), ("labels", element_spec[1])]
    else:
        items = [("the dataset", element_spec)]
    out: list[tuple[str, Any]] = []

    def walk(name: str, spec: Any) -> None:
        if isinstance(spec, dict):
            for key in sorted(spec, key=str):
                walk(f"{name}[{key!r}]", spec[key])
        elif isinstance(spec, (tuple, list)):
            for index, item in enumerate(spec):
                walk(f"{name}[{index}]", item)
        else:
            out.append((name, spec))

    for name, spec in items:
        walk(name, spec)
    return out


def checked_loss(loss: Callable[[Any, Any], Any], plugin: str) -> Callable[[Any, Any], Any]:
    """``ModelSpec.loss`` wrapped with a trace-time shape check: one loss per example (shape
    ``[batch]``). A scalar (an already averaged loss) would be divided by the global batch a
    second time; a ``[batch, n]`` loss summed over ``n``: wrong gradients, without a word."""

    def per_example_loss(labels: Any, outputs: Any) -> Any:
        from harness.tfcompat import tf

        value = tf.convert_to_tensor(loss(labels, outputs))
        shape = value.shape
        if shape.rank is not None:
            batch = _batch_size(labels, outputs)
            lead = tf.compat.dimension_value(shape[0]) if shape.rank else None
            if shape.rank != 1 or (batch is not None and lead is not None and lead != batch):
                raise PluginError(plugin, f"ModelSpec.loss returned shape {shape.as_list()}; it "
                                          f"must return one loss per example, shape [batch]"
                                          f"{f' = [{batch}]' if batch else ''} (the runner "
                                          f"averages it over the global batch)")
        return value

    per_example_loss.__wrapped__ = loss
    return per_example_loss


def _batch_size(labels: Any, outputs: Any) -> int | None:
    from harness.tfcompat import tf

    for structure in (labels, outputs):
        for leaf in tf.nest.flatten(structure):
            shape = getattr(leaf, "shape", None)
            if shape is not None and shape.rank:
                return tf.compat.dimension_value(shape[0])
    return None


def missing_target_metric(case: Case, metrics: dict[str, float], plugin: str) -> str | None:
    """Why the first evaluation cannot serve ``eval.target`` (a metric it does not return),
    or None: a target that can never be met would read "not met" after a long run."""
    missing = [m for m in case.eval.target if m not in metrics]
    if not missing:
        return None
    return (f"{case.source}: eval.target: metric {missing[0]!r} is not among the metrics "
            f'plugin "{plugin}" evaluates ({", ".join(metrics) or "none"})')

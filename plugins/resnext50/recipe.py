"""The ModelZoo training recipe: cosine LR with warmup, SGD momentum, loss, loss scale, finetune."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable

from harness import BenchError

if TYPE_CHECKING:
    from harness import Case, RunContext

# The seed's NPURunConfig / README: static loss scale 1024 under allow_mix_precision.
LOSS_SCALE = 1024


def warmup_steps(case: Case, ctx: RunContext) -> int:
    """LR warmup length: ``params.lr_warmup_steps`` when set, else ``warmup_epochs`` x steps
    per epoch; never longer than the run."""
    p = case.params
    if p["lr_warmup_steps"] is not None:
        steps = int(p["lr_warmup_steps"])
    else:
        steps = round(float(p["warmup_epochs"]) * (ctx.steps_per_epoch or 0))
    return max(0, min(steps, ctx.train_steps))


def cosine_value(step: float, peak: float, end: float, warmup: int, total: int) -> float:
    """The schedule in plain Python (what the tests and the log line check against)."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return end + 0.5 * (peak - end) * (1.0 + math.cos(math.pi * progress))


def make_schedule(peak: float, end: float, warmup: int, total: int) -> Any:
    """Linear warmup to ``peak`` over ``warmup`` steps (step 0 already trains, at
    peak / warmup), then cosine decay to ``end`` at step ``total`` (the seed's
    ``lr_decay_mode: cosine``, ``learning_rate_maximum`` 0.1, ``learning_rate_end`` 1e-6)."""
    from harness.tfcompat import keras, tf

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, peak: float, end: float, warmup: int, total: int) -> None:
            self.peak, self.end, self.warmup, self.total = peak, end, warmup, total

        def __call__(self, step: Any) -> Any:
            step = tf.cast(step, tf.float32)
            span = float(max(self.total - self.warmup, 1))
            progress = tf.clip_by_value((step - self.warmup) / span, 0.0, 1.0)
            cosine = self.end + 0.5 * (self.peak - self.end) * (1.0 + tf.cos(math.pi * progress))
            if not self.warmup:
                return cosine
            ramp = self.peak * (step + 1.0) / float(self.warmup)
            return tf.where(step < self.warmup, ramp, cosine)

        def get_config(self) -> dict[str, Any]:
            return {"peak": self.peak, "end": self.end, "warmup": self.warmup,
                    "total": self.total}

    return WarmupCosine(peak, end, warmup, total)


def case_schedule(case: Case, ctx: RunContext) -> Any:
    """The case's warmup-cosine schedule over the run's ``ctx.train_steps``."""
    p = case.params
    return make_schedule(float(p["learning_rate"]), float(p["learning_rate_end"]),
                         warmup_steps(case, ctx), ctx.train_steps)


def make_optimizer(case: Case, schedule: Any) -> Any:
    """SGD with momentum (0.9, the seed's) over ``schedule``.

    The Keras 2 "legacy" SGD: it applies each variable's update as one fused
    ``ResourceApplyKerasMomentum`` op, where the newer optimizer runs several element-wise
    ops per variable (~0.1-0.2 s more per ResNeXt-50 step on a 2-core CPU). TF 2.6 (Ascend)
    has no ``legacy`` namespace: its plain SGD is that optimizer.
    """
    from harness.tfcompat import keras

    sgd = getattr(keras.optimizers, "legacy", keras.optimizers).SGD
    return sgd(learning_rate=schedule, momentum=float(case.params["momentum"]))


def make_loss(num_classes: int, label_smoothing: float) -> tuple[Any, Any]:
    """Per-example softmax cross-entropy on integer labels (one value per example), and a
    variable holding the batch-mean cross-entropy of the last step.

    The ModelZoo log prints ``loss`` (cross-entropy) beside ``total_loss`` (plus weight
    decay) of the same step; the runner reports only the total, so the loss records its
    own part. The variable is on-read synchronised (mean over replicas): read outside the
    step it is the global batch's mean. Create it inside the strategy scope.
    """
    from harness.tfcompat import tf

    last = tf.Variable(0.0, trainable=False, name="last_cross_entropy",
                       synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.MEAN)

    def loss(labels: Any, logits: Any) -> Any:
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        logits = tf.cast(logits, tf.float32)
        if label_smoothing:
            onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
            per_example = tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits)
        else:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits)
        last.assign(tf.reduce_mean(per_example))
        return per_example

    return loss, last


# --- finetune: name-based checkpoints (the seed's tf.train.init_from_checkpoint) -------------


def variable_name(variable: Any) -> str:
    name = variable.name
    return name[:-2] if name.endswith(":0") else name


def save_checkpoint(model: Any, prefix: str) -> str:
    """Write the model's variables (trainable and BN statistics) as a name-based TF
    checkpoint (keys = variable names, as TF1 Savers write them); returns ``prefix``."""
    from harness.tfcompat import tf

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    names = [variable_name(v) for v in model.variables]
    values = [tf.convert_to_tensor(v) for v in model.variables]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=values)
    return prefix


def restore_checkpoint(model: Any, path: str, exclude: list[str], source: str,
                       assign: Callable[[Any, Any], None] | None = None) -> list[str]:
    """Assign every model variable not under an ``exclude`` prefix from the name-based
    checkpoint at ``path``; returns the restored names. A missing variable or a shape that
    differs is an error naming ``params.restore_path`` (exclude such layers explicitly).
    ``assign(variable, value)`` sets a value (``ctx.assign``: deferred under the graph engine)."""
    from harness.tfcompat import tf

    where = f"{source}: params.restore_path"
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError) as exc:
        raise BenchError(f"{where}: cannot read checkpoint {path!r}: "
                         f"{str(exc).splitlines()[0]}") from None
    shapes = reader.get_variable_to_shape_map()
    restored = []
    for variable in model.variables:
        name = variable_name(variable)
        if any(name == p or name.startswith(p.rstrip("/") + "/") for p in exclude):
            continue
        if name not in shapes:
            raise BenchError(f"{where}: variable {name!r} is not in {path!r} "
                             f"(add its prefix to params.restore_exclude)")
        if list(shapes[name]) != list(variable.shape):
            raise BenchError(f"{where}: {name!r} has shape {list(variable.shape)}, the checkpoint "
                             f"{list(shapes[name])}; add {name.split('/')[0]!r} to "
                             f"params.restore_exclude")
        value = reader.get_tensor(name).astype(variable.dtype.as_numpy_dtype)
        if assign is None:
            variable.assign(value)
        else:
            assign(variable, value)
        restored.append(name)
    return restored

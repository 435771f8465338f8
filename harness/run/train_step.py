"""The compiled training step and what the runner reads off the model between steps."""

from __future__ import annotations

from typing import Any, Callable


def distribute(strategy: Any, dataset: Any) -> Any:
    """Hand ``dataset`` to ``strategy``.

    In one process the dataset yields global batches and the strategy splits each over the
    local devices. With one device per worker process, each worker's dataset already yields
    that replica's batch (``ctx.pipeline_batch_size``): it must not be split again.
    """
    if strategy.num_replicas_in_sync == 1:
        return dataset  # the default strategy: nothing to distribute
    if len(strategy.extended.worker_devices) == 1:
        return strategy.distribute_datasets_from_function(lambda _input_context: dataset)
    return strategy.experimental_distribute_dataset(dataset)


def weights_digests(strategy: Any, model: Any) -> list[str]:
    """One SHA-256 over all trainable weights per local replica: data-parallel replicas that
    stayed in step have equal digests."""
    import hashlib

    digests = None
    for variable in model.trainable_variables:
        values = strategy.experimental_local_results(variable)
        if digests is None:
            digests = [hashlib.sha256() for _ in values]
        for digest, value in zip(digests, values):
            digest.update(value.numpy().tobytes())
    return [d.hexdigest() for d in digests or []]


def current_lr(optimizer: Any, step: int) -> float | None:
    """The learning rate in effect at ``step``: a schedule is called with it; a plain rate
    is read (also when it is a MirroredVariable, as under MirroredStrategy)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = getattr(inner, "_learning_rate", None)  # Keras 2 keeps the schedule object here
    if lr is None or not callable(lr):
        lr = getattr(inner, "learning_rate", None)
    if lr is None:
        return None
    try:
        value = lr(step) if callable(lr) else lr
        if hasattr(value, "read_value"):
            value = value.read_value()
        return float(value.numpy() if hasattr(value, "numpy") else value)
    except (TypeError, ValueError):
        return None


def make_train_step(strategy: Any, spec: Any, global_batch_size: int,
                    all_reduce: Callable[[list], list] | None = None) -> Callable[[Any], Any]:
    """One compiled training step over a distributed iterator; returns the global mean loss.

    The per-example loss is summed and divided by the *global* batch on every replica and the
    replica losses are summed, so 1 and N devices compute the same gradient for the same data.
    ``all_reduce`` (the backend's) sums gradients and loss over one-process-per-device workers.
    """
    from harness import tfcompat
    from harness.tfcompat import tf

    model, optimizer, loss_fn = spec.model, spec.optimizer, spec.loss
    scaled = tfcompat.is_loss_scale_optimizer(optimizer)

    def replica_step(features: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            per_example = tf.cast(loss_fn(labels, outputs), tf.float32)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(
                    tf.add_n([tf.cast(v, tf.float32) for v in model.losses]))
            to_differentiate = optimizer.get_scaled_loss(loss) if scaled else loss
        variables = model.trainable_variables
        grads = tape.gradient(to_differentiate, variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        if all_reduce is not None:
            *grads, loss = all_reduce([*grads, loss])
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    @tf.function
    def train_step(iterator: Any) -> Any:
        features, labels = next(iterator)
        per_replica = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step

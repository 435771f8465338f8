"""The compiled training step and what the runner reads off the model between steps."""

from __future__ import annotations

from typing import Any, Callable


def check_launch(steps: int, steps_per_loop: int, pending: int, capacity: int) -> None:
    """An engine's ``launch(steps)`` rules: 1 to ``steps_per_loop`` steps, and no more steps
    launched without a wait than the engine keeps losses of."""
    if not 1 <= steps <= steps_per_loop:
        raise ValueError(f"launch({steps}): 1 to {steps_per_loop} steps per launch")
    if pending + steps > capacity:
        raise ValueError(f"{pending + steps} steps launched without a wait; the engine keeps "
                         f"the losses of {capacity}")


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


def _step_body(strategy: Any, spec: Any, global_batch_size: int, replicas: int,
               all_reduce: Callable[[list], list] | None) -> Callable[[Any], Any]:
    """One training step over a distributed iterator (plain Python: the caller compiles it);
    returns the global mean loss.

    The per-example loss is summed and divided by the *global* batch on every replica, and the
    regularization losses are divided by the *global* replica count ``replicas`` (every device
    of the count, over all processes), so summing the replicas' losses and gradients gives
    each term once: 1 and N devices compute the same loss and gradient for the same data.
    (``tf.nn.scale_regularization_loss`` divides by ``num_replicas_in_sync``, which is 1 in
    each process of a one-process-per-device NPU launch: the sum over ranks would count the
    weight decay RANK_SIZE times.) ``all_reduce`` (the backend's) sums gradients and loss over
    one-process-per-device workers.
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
                regularization = tf.add_n([tf.cast(v, tf.float32) for v in model.losses])
                loss += regularization * (1.0 / replicas)
            to_differentiate = optimizer.get_scaled_loss(loss) if scaled else loss
        variables = model.trainable_variables
        grads = tape.gradient(to_differentiate, variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        if all_reduce is not None:
            *grads, loss = all_reduce([*grads, loss])
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    def step(iterator: Any) -> Any:
        features, labels = next(iterator)
        per_replica = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def make_train_step(strategy: Any, spec: Any, global_batch_size: int, replicas: int = 1,
                    all_reduce: Callable[[list], list] | None = None,
                    iterator: Any = None) -> Callable[..., Any]:
    """One compiled training step per call: ``train_step(iterator)`` returns the global mean
    loss (see :func:`_step_body` for the loss and gradient scaling). Given ``iterator``, the
    step reads that one and takes no argument: ``train_step()`` (a call then costs no
    signature matching of an iterator argument, as in a bare loop that captures it)."""
    from harness.tfcompat import tf

    step = _step_body(strategy, spec, global_batch_size, replicas, all_reduce)
    if iterator is None:
        return tf.function(step)
    return tf.function(lambda: step(iterator))


def make_train_loop(strategy: Any, spec: Any, global_batch_size: int, replicas: int,
                    all_reduce: Callable[[list], list] | None, capacity: int, iterator: Any,
                    ) -> tuple[Callable[[Any, Any], None], Any]:
    """Several training steps per compiled call (loop sinking): ``loop(steps, offset)`` runs
    ``steps`` steps over ``iterator`` in one ``tf.range`` loop and writes step i's loss to
    ``losses[offset + i]``; returns ``(loop, losses)``, ``losses`` a float32 variable of
    ``capacity`` slots that the caller reads after a host sync.

    The shape Ascend's TF 2 adapter sinks onto the device (npu_device's loop-graph rules): one
    loop that consumes the dataset iterator and a graph that returns nothing (every op inside
    the loop: the losses leave through the variable); ``steps`` and ``offset`` are tensors,
    so one trace serves every call. ModelZoo's TF 2 ResNet50/BERT loops have this shape.
    """
    from harness.tfcompat import tf

    step = _step_body(strategy, spec, global_batch_size, replicas, all_reduce)
    with tf.init_scope():
        losses = tf.Variable(tf.zeros([capacity], tf.float32), trainable=False,
                             name="zoobench_step_losses")
        slots = tf.range(capacity)

    @tf.function
    def loop(steps: Any, offset: Any) -> None:
        for i in tf.range(steps):
            loss = tf.cast(step(iterator), tf.float32)
            # a select over the slots, not a scatter: ops every device compiles (the adapter
            # sinks the loop only when all of its graph runs on the NPU)
            losses.assign(tf.where(tf.equal(slots, offset + i), loss, losses))

    return loop, losses

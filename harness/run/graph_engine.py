"""The graph engine: training steps as ``tf.compat.v1.Session`` runs (TF 1.x, and ``engine:
graph`` on TF 2), with the contract of :class:`harness.run.engine.EagerEngine`.

The runner enters a fresh ``tf.Graph`` (:func:`harness.run.engine.engine_scope`) before the
plugins build the dataset and the model, so both live in it. The engine adds one train op that
runs ``steps_per_loop`` steps per ``session.run``: a ``tf.while_loop`` on the host's devices,
or, where the backend loops on the device (npu_bridge's ``util.set_iteration_per_loop``), the
one-step op the device runs that many times. Every step writes its loss into a variable of
``capacity`` slots (the device loop returns only its last step's fetches), read back by
``wait``. A ``session.run`` returns when its loop has finished: each launch ends in a host sync.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import BenchError
from harness.run.train_step import check_launch

if TYPE_CHECKING:
    from harness.devices.base import DeviceBackend


def train_optimizer(optimizer: Any) -> Any:
    """``optimizer`` (Keras 2, possibly a Keras LossScaleOptimizer) behind the
    ``tf.compat.v1.train.Optimizer`` interface that npu_bridge's wrappers
    (NPUDistributedOptimizer, NPULossScaleOptimizer) call: ``compute_gradients`` and
    ``apply_gradients(grads_and_vars, global_step=None, name=None)``."""
    from harness import tfcompat
    from harness.tfcompat import keras, tf

    scaled = tfcompat.is_loss_scale_optimizer(optimizer)
    # Keras >= 2.11's optimizer (not "legacy") returns only its step counter's update from
    # apply_gradients and relies on automatic control dependencies for the variables'
    # updates, which a plain graph does not add: apply it inside a tf.function, which does.
    legacy = getattr(keras.optimizers, "legacy", None)
    functional = legacy is not None and not isinstance(_inner(optimizer), legacy.Optimizer)

    class KerasAsTrainOptimizer(tf.compat.v1.train.Optimizer):
        def __init__(self) -> None:
            super().__init__(use_locking=False, name=type(optimizer).__name__)
            self.keras_optimizer = optimizer

        def compute_gradients(self, loss: Any, var_list: Any = None, gate_gradients: int = 1,
                              aggregation_method: Any = None,
                              colocate_gradients_with_ops: bool = False,
                              grad_loss: Any = None) -> list:
            value = loss() if callable(loss) else loss
            variables = list(var_list if var_list is not None
                             else tf.compat.v1.trainable_variables())
            target = optimizer.get_scaled_loss(value) if scaled else value
            grads = tf.compat.v1.gradients(
                target, variables, grad_ys=grad_loss, aggregation_method=aggregation_method,
                colocate_gradients_with_ops=colocate_gradients_with_ops)
            if scaled:
                grads = optimizer.get_unscaled_gradients(grads)
            return list(zip(grads, variables))

        def apply_gradients(self, grads_and_vars: Any, global_step: Any = None,
                            name: Any = None) -> Any:
            pairs = [(g, v) for g, v in grads_and_vars if g is not None]
            if functional:
                grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
                @tf.function
                def apply(gs: list) -> Any:
                    optimizer.apply_gradients(zip(gs, variables))
                    return tf.constant(True)  # a function's outputs wait for its updates

                applied = apply(grads).op
            else:
                applied = optimizer.apply_gradients(pairs)
            if global_step is None:
                return applied
            with tf.control_dependencies([applied]):
                return tf.compat.v1.assign_add(global_step, 1)

    return KerasAsTrainOptimizer()


def _inner(optimizer: Any) -> Any:
    for name in ("inner_optimizer", "_optimizer"):  # Keras LossScaleOptimizer (TF 2 / TF 1.15)
        inner = getattr(optimizer, name, None)
        if inner is not None:
            return inner
    return optimizer


def _side_effects(ops: list) -> list:
    """The stateful ops among ``ops`` whose outputs nothing reads (a loss function's metric
    updates, a variable it assigns): a ``tf.function`` runs them through its automatic control
    dependencies; here the step depends on them explicitly. Variable handles, reads and
    random ops feed others, so only their consumers' updates are picked."""
    return [op for op in ops if op.op_def is not None and op.op_def.is_stateful
            and not any(out.consumers() for out in op.outputs)]


class GraphEngine:
    """Training steps as ``session.run`` calls of one train op over an initializable iterator.

    ``backend`` contributes the session config, the optimizer wrappers (loss scaling, gradient
    averaging over ranks) and the device loop; see :class:`harness.devices.base.DeviceBackend`.
    ``all_reduce`` sums the reported loss over one-process-per-device ranks.
    """

    def __init__(self, strategy: Any, spec: Any, dataset: Any, global_batch_size: int,
                 backend: DeviceBackend, replicas: int = 1,
                 all_reduce: Callable[[list], list] | None = None, steps_per_loop: int = 1,
                 capacity: int | None = None) -> None:
        from harness import tfcompat
        from harness.tfcompat import tf

        if strategy.num_replicas_in_sync != 1:
            raise BenchError(f"engine: graph runs one device per process; this count has "
                             f"{strategy.num_replicas_in_sync} replicas in one process (use "
                             f"launcher: process on npu, or the eager engine)")
        self.spec = spec
        self.steps_per_loop = steps_per_loop
        self.capacity = max(capacity or steps_per_loop, steps_per_loop)
        self.graph = tf.compat.v1.get_default_graph()
        self._global_batch = global_batch_size
        self._replicas = replicas
        self._all_reduce = all_reduce
        self._iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        self._optimizer, self._averaged = backend.graph_optimizer(train_optimizer(spec.optimizer))
        with tf.compat.v1.variable_scope("zoobench", reuse=tf.compat.v1.AUTO_REUSE):
            self._losses = tf.compat.v1.get_variable(
                "step_losses", [self.capacity], tf.float32, tf.compat.v1.zeros_initializer(),
                trainable=False, use_resource=True)
            self._cursor = tf.compat.v1.get_variable(
                "step_cursor", [], tf.int64, tf.compat.v1.zeros_initializer(), trainable=False,
                use_resource=True)
        device_loops = backend.loops_on_device()
        if steps_per_loop == 1 or device_loops:
            self._steps = None
            train_op = self._step()
        else:
            self._steps = tf.compat.v1.placeholder(tf.int32, [], name="zoobench_loop_steps")
            loop = tf.while_loop(lambda i: i < self._steps, self._loop_body, [tf.constant(0)],
                                 parallel_iterations=1, name="zoobench_train_loop")
            train_op = tf.nest.flatten(loop)[0].op
        self._lr = self._learning_rate_tensor()
        self.loss_scale = self._loss_scale_tensor()
        self.session = tf.compat.v1.Session(graph=self.graph,
                                            config=backend.graph_session_config(steps_per_loop))
        self.session.run([tf.compat.v1.global_variables_initializer(),
                          tf.compat.v1.local_variables_initializer(),
                          tf.compat.v1.tables_initializer(), self._iterator.initializer])
        tfcompat.initialize_keras_variables(self.session)
        self._device_loop = device_loops and steps_per_loop > 1
        self.fixed_loop = self._device_loop  # every launch is the session config's loop
        self._train_op = backend.device_loop(self.session, train_op, steps_per_loop) \
            if self._device_loop else train_op
        self._launched = 0  # steps launched so far (slot of step k: k % capacity)
        self._pending = 0

    # -- building ---------------------------------------------------------------------------

    def _step(self) -> Any:
        """One training step's ops; returns the op that runs them (its loss in the next slot)."""
        from harness.tfcompat import tf

        model, loss_fn = self.spec.model, self.spec.loss
        features, labels = self._iterator.get_next()
        graph = tf.compat.v1.get_default_graph()
        first = len(graph.get_operations())
        outputs = model(features, training=True)
        per_example = tf.cast(loss_fn(labels, outputs), tf.float32)
        effects = _side_effects(graph.get_operations()[first:])
        # tf.nn.compute_average_loss's arithmetic, without the rank Assert it leaves unused in
        # a graph (TF logs every unused op at exit)
        loss = tf.reduce_sum(per_example) / tf.cast(self._global_batch, tf.float32)
        regularization = model.losses
        if regularization:
            loss += tf.nn.scale_regularization_loss(
                tf.add_n([tf.cast(v, tf.float32) for v in regularization]))
        # An optimizer that averages gradients over N ranks (NPUDistributedOptimizer) gets
        # N x this rank's share of the global mean loss: the average is then the global mean.
        target = loss * float(self._averaged) if self._averaged > 1 else loss
        grads_and_vars = self._optimizer.compute_gradients(target, model.trainable_variables)
        # Keras 2 layers in a graph collect their updates (batch-norm statistics) there.
        updates = list(model.get_updates_for(None)) + list(model.get_updates_for(features))
        with tf.control_dependencies(updates):
            applied = self._optimizer.apply_gradients(grads_and_vars)
        reported = self._all_reduce([loss])[0] if self._all_reduce is not None else loss
        slot = tf.math.floormod(self._cursor.read_value(), self.capacity)
        write = tf.compat.v1.scatter_update(self._losses, tf.reshape(slot, [1]),
                                            tf.reshape(reported, [1]))
        with tf.control_dependencies([applied, write, *effects]):
            return tf.group(self._cursor.assign_add(1), name="zoobench_train_step")

    def _loop_body(self, i: Any) -> Any:
        from harness.tfcompat import tf

        with tf.control_dependencies([self._step()]):
            return i + 1

    def _loss_scale_tensor(self) -> Any:
        """The loss scale in use: the adapter's loss-scale manager's, or a Keras
        LossScaleOptimizer's; None without loss scaling."""
        from harness import tfcompat

        manager = getattr(self._optimizer, "_loss_scale_manager", None)
        if manager is not None:
            return manager.get_loss_scale()
        if tfcompat.is_loss_scale_optimizer(self.spec.optimizer):
            scale = self.spec.optimizer.loss_scale
            return scale() if callable(scale) else scale  # TF 1.15: a LossScale object
        return None

    def _learning_rate_tensor(self) -> tuple[Any, Any] | None:
        """(step placeholder, the learning rate at that step) of the Keras optimizer."""
        from harness.tfcompat import tf

        inner = _inner(self.spec.optimizer)
        lr = getattr(inner, "_learning_rate", None)
        if lr is None or not callable(lr):
            lr = getattr(inner, "learning_rate", None)
        if lr is None:
            return None
        step = tf.compat.v1.placeholder(tf.int64, [], name="zoobench_lr_step")
        try:
            value = lr(step) if callable(lr) else lr
            return step, tf.cast(tf.convert_to_tensor(value), tf.float32)
        except (TypeError, ValueError):
            return None

    def run_once(self, op: Any) -> None:
        """Run ``op`` once in the session (after init): the backend's broadcast."""
        self.session.run(op)

    def load(self, assignments: list) -> None:
        """Set variables to values (``ctx.assign`` of a restored checkpoint), after init."""
        for variable, value in assignments:
            variable.load(value, self.session)

    # -- the contract -----------------------------------------------------------------------

    def launch(self, steps: int) -> Any:
        """Run ``steps`` training steps (one ``session.run``); a handle for :meth:`wait`."""
        check_launch(steps, self.steps_per_loop, self._pending, self.capacity)
        if self._device_loop and steps != self.steps_per_loop:
            raise BenchError(f"train.steps_per_loop: the device loop runs {self.steps_per_loop} "
                             f"steps per session run (the session config's "
                             f"iterations_per_loop); a loop of {steps} cannot run: make "
                             f"train.steps a multiple of it")
        feed = {self._steps: steps} if self._steps is not None else None
        for _ in range(1 if self._steps is not None or self._device_loop else steps):
            self.session.run(self._train_op, feed)
        handle = (self._launched, steps)
        self._launched += steps
        self._pending += steps
        return handle

    def wait(self, handles: list[Any]) -> list[float]:
        """The per-step global mean losses of the launches ``handles``, in step order."""
        self._pending = 0
        values = self.session.run(self._losses)
        return [float(values[(start + k) % self.capacity])
                for start, steps in handles for k in range(steps)]

    def weights_digests(self) -> list[str]:
        digest = hashlib.sha256()
        for value in self.session.run(list(self.spec.model.trainable_variables)):
            digest.update(value.tobytes())
        return [digest.hexdigest()]

    def learning_rate(self, step: int) -> float | None:
        if self._lr is None:
            return None
        placeholder, value = self._lr
        return float(self.session.run(value, {placeholder: step}))

    def close(self) -> None:
        self.session.close()

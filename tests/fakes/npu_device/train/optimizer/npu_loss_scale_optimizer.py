"""``NpuLossScaleOptimizer(inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None)``.

Real: Ascend/tensorflow tf_adapter_2.x/python/npu_device/train/optimizer/npu_loss_scale_optimizer.py
(master 085a7b2e): a subclass of tf.keras.mixed_precision.LossScaleOptimizer (Keras 2.6), so
the constructor's checks are Keras's (TypeError for a non-bool ``dynamic``, ValueError for a
static scale without ``initial_scale``, ...). Its ``apply_gradients(grads_and_vars, name=None)``
(no ``experimental_aggregate_gradients``) reads the NPU float status after the gradients,
sums it over the ranks with ``all_reduce([status], 'sum', fusion=0)`` when RANK_SIZE > 1,
skips the update (iterations + 1) on overflow, static scale or dynamic, and keeps the result
in ``last_step_finite``; without ``global_npu_ctx()`` it is Keras's own apply_gradients.

Here it wraps the Keras 2 class zoobench uses (tf.keras up to TF 2.15, tf_keras after), so
Keras's checks and dynamic scale updates run for real; the float status is played by "all
gradients finite".
"""

from __future__ import annotations

import importlib.util
import os


def _keras():
    if importlib.util.find_spec("tf_keras") is not None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    major, minor = (int("".join(c for c in p if c.isdigit()) or 0)
                    for p in tf.__version__.split(".")[:2])
    if (major, minor) >= (2, 16):
        import tf_keras

        return tf, tf_keras
    return tf, tf.keras


class NpuLossScaleOptimizer:
    def __init__(self, inner_optimizer, dynamic=True, initial_scale=None,
                 dynamic_growth_steps=None):
        import npu_device

        tf, keras = _keras()
        npu_device.CALLS.append(("NpuLossScaleOptimizer", type(inner_optimizer).__name__,
                                 dynamic, initial_scale))
        self._wrapped = keras.mixed_precision.LossScaleOptimizer(
            inner_optimizer, dynamic, initial_scale, dynamic_growth_steps)
        self._last_step_finite = tf.Variable(False, trainable=False, dtype=tf.bool,
                                             name="npu_last_step_finite")

    def __getattr__(self, name):
        if name == "_wrapped":
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    @property
    def last_step_finite(self):
        return self._last_step_finite

    def get_scaled_loss(self, loss):
        import npu_device

        npu_device.CALLS.append(("get_scaled_loss",))
        return self._wrapped.get_scaled_loss(loss)

    def get_unscaled_gradients(self, grads):
        import npu_device

        npu_device.CALLS.append(("get_unscaled_gradients",))
        return self._wrapped.get_unscaled_gradients(grads)

    def _keras_apply(self, grads_and_vars, name):
        if name is None:
            return self._wrapped.apply_gradients(grads_and_vars)
        return self._wrapped.apply_gradients(grads_and_vars, name=name)

    def apply_gradients(self, grads_and_vars, name=None):
        import npu_device
        from npu_device.distribute.hccl import all_reduce

        ctx = npu_device.global_npu_ctx()
        if ctx is None or npu_device.is_inf_nan_enabled():
            return self._keras_apply(grads_and_vars, name)
        tf, _keras_module = _keras()
        grads_and_vars = tuple(grads_and_vars)
        grads = [g for g, _ in grads_and_vars if g is not None]
        finite = [tf.reduce_all(tf.math.is_finite(_dense(tf, g))) for g in grads]
        status = tf.cast(tf.logical_not(tf.reduce_all(finite)), tf.float32)  # the float status
        if ctx.workers_num > 1:
            status = all_reduce([status], "sum", fusion=0)[0]
        should_apply = tf.equal(status, 0.0)
        self._last_step_finite.assign(should_apply)
        if self._wrapped.dynamic:
            # Keras skips non-finite steps and lowers the scale itself; make every rank agree.
            nan = float("nan")
            gv = [(None if g is None else _where(tf, should_apply, g, nan), v)
                  for g, v in grads_and_vars]
            return self._keras_apply(gv, name)
        inner = self._wrapped.inner_optimizer
        variables = [v for _, v in grads_and_vars]
        if hasattr(inner, "_create_all_weights"):  # slots before the cond, as Keras does
            inner._create_all_weights(variables)
        elif hasattr(inner, "build"):
            inner.build(variables)

        def apply():
            self._keras_apply(grads_and_vars, name)
            return tf.constant(True)

        def skip():
            self._wrapped.iterations.assign_add(1)
            return tf.constant(False)

        return tf.cond(should_apply, apply, skip)


def _dense(tf, g):
    return g.values if isinstance(g, tf.IndexedSlices) else g


def _where(tf, keep, g, fill):
    if isinstance(g, tf.IndexedSlices):
        values = tf.where(keep, g.values, tf.cast(fill, g.values.dtype))
        return tf.IndexedSlices(values, g.indices, g.dense_shape)
    return tf.where(keep, g, tf.cast(fill, g.dtype))

"""``FixedLossScaleManager(loss_scale, enable_overflow_check=True)`` and
``ExponentialUpdateLossScaleManager(init_loss_scale, incr_every_n_steps,
decr_every_n_nan_or_inf=2, incr_ratio=2, decr_ratio=0.8)``.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_loss_scale_manager.py
(master 085a7b2e), subclasses of tf.contrib.mixed_precision's managers (TF 1.15
tensorflow/contrib/mixed_precision/python/loss_scale_manager.py), whose logic is rebuilt here so
the fake also runs on TF 2's tf.compat.v1:

* Fixed: ValueError "loss scale must be at least 1." below 1; the scale is a float32 constant
  tensor; ``update_loss_scale`` is a no-op; ``get_enable_overflow_check()`` (r1.1.1 had no
  ``enable_overflow_check`` argument).
* Exponential: no argument checks; float32 variable "loss_scale", int32 "good_steps",
  "bad_steps" (non-trainable). Finite step: good+1, and when good+1 >= incr_every_n_steps the
  scale times incr_ratio if it stays below 3.4e38 (the adapter's test; contrib tested
  is_finite) and both counters reset. Non-finite step: bad+1 and good reset, and when
  bad+1 >= decr_every_n_nan_or_inf the scale becomes max(1, scale * decr_ratio) and both reset.

Not in npu_device.compat.v1: the real TF 2 build deletes this module there
(tf_adapter_2.x/compat_v1/upgrade_tf1_compat_tf2.py).
"""

from __future__ import annotations

if __name__.startswith("npu_device."):
    raise ModuleNotFoundError(f"No module named {__name__!r}")


class LossScaleManager:
    def get_loss_scale(self):
        raise NotImplementedError

    def update_loss_scale(self, finite_grads):
        raise NotImplementedError


class FixedLossScaleManager(LossScaleManager):
    def __init__(self, loss_scale, enable_overflow_check=True):
        import tensorflow as tf

        if loss_scale < 1:
            raise ValueError("loss scale must be at least 1.")
        self._loss_scale = tf.convert_to_tensor(loss_scale, dtype=tf.float32, name="loss_scale")
        self._enable_overflow_check = enable_overflow_check
        from ... import CALLS

        CALLS.append(("FixedLossScaleManager", loss_scale, enable_overflow_check))

    def get_enable_overflow_check(self):
        return self._enable_overflow_check

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        import tensorflow as tf

        return tf.no_op()


class ExponentialUpdateLossScaleManager(LossScaleManager):
    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2,
                 incr_ratio=2, decr_ratio=0.8):
        import tensorflow as tf

        v1 = tf.compat.v1
        self._incr_every_n_steps = incr_every_n_steps
        self._decr_every_n_nan_or_inf = decr_every_n_nan_or_inf
        self._incr_ratio = incr_ratio
        self._decr_ratio = decr_ratio
        self._loss_scale = v1.Variable(tf.convert_to_tensor(init_loss_scale, tf.float32),
                                       name="loss_scale", dtype=tf.float32, trainable=False)
        self._num_good_steps = v1.Variable(0, name="good_steps", dtype=tf.int32, trainable=False)
        self._num_bad_steps = v1.Variable(0, name="bad_steps", dtype=tf.int32, trainable=False)
        from ... import CALLS

        CALLS.append(("ExponentialUpdateLossScaleManager", init_loss_scale, incr_every_n_steps,
                      decr_every_n_nan_or_inf, incr_ratio, decr_ratio))

    def get_loss_scale(self):
        return self._loss_scale

    def _reset_stats(self):
        import tensorflow as tf

        v1 = tf.compat.v1
        return tf.group(v1.assign(self._num_good_steps, 0), v1.assign(self._num_bad_steps, 0))

    def update_loss_scale(self, finite_grads):
        import tensorflow as tf

        v1 = tf.compat.v1

        def finite():
            def increase():
                grow = tf.less(self._loss_scale, 3.4e38 / self._incr_ratio)
                value = tf.cond(grow, lambda: self._loss_scale * self._incr_ratio,
                                lambda: tf.identity(self._loss_scale))
                return tf.group(v1.assign(self._loss_scale, value), self._reset_stats())

            return tf.cond(self._num_good_steps + 1 >= self._incr_every_n_steps, increase,
                           lambda: v1.assign_add(self._num_good_steps, 1).op)

        def not_finite():
            def decrease():
                value = tf.maximum(1.0, self._loss_scale * self._decr_ratio)
                return tf.group(v1.assign(self._loss_scale, value), self._reset_stats())

            def count():
                return tf.group(v1.assign_add(self._num_bad_steps, 1),
                                v1.assign(self._num_good_steps, 0))

            return tf.cond(self._num_bad_steps + 1 >= self._decr_every_n_nan_or_inf, decrease,
                           count)

        return tf.cond(finite_grads, finite, not_finite)

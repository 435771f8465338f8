"""``NPULossScaleOptimizer(opt, loss_scale_manager, is_distributed=False)``.

Real: Ascend/tensorflow tf_adapter/python/npu_bridge/estimator/npu/npu_loss_scale_optimizer.py
(master 085a7b2e), a subclass of tf.contrib.mixed_precision.LossScaleOptimizer (rebuilt here
on tf.compat.v1.train.Optimizer, like contrib without calling Optimizer.__init__; unknown
attributes go to the wrapped optimizer):

* ``compute_gradients(loss, ...)``: the wrapped optimizer's gradients of loss x scale, each
  times 1/scale (None stays None).
* ``apply_gradients(grads_and_vars, global_step=None, name=None)``: with overflow checking (any
  manager but a FixedLossScaleManager(enable_overflow_check=False)) the NPU float status is
  read after the gradients, summed over the ranks with ``hccl_ops.allreduce([status], "sum",
  fusion=0)`` when ``is_distributed``; the wrapped apply_gradients runs only when it is 0 (so
  on overflow ``global_step`` does not advance), and ``update_loss_scale(finite)`` runs either way.

The float status (a device register set by any overflowing op in saturation mode) is played by
"all gradients finite"; the INF/NaN mode branch (npu_plugin.is_inf_nan_enabled, 910B) is not
modelled. Not in npu_device.compat.v1 (deleted from the TF 2 build).
"""

from __future__ import annotations

if __name__.startswith("npu_device."):
    raise ModuleNotFoundError(f"No module named {__name__!r}")

import tensorflow as _tf  # noqa: E402

from .npu_loss_scale_manager import FixedLossScaleManager  # noqa: E402


class NPULossScaleOptimizer(_tf.compat.v1.train.Optimizer):
    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        self._opt = opt
        self._loss_scale_manager = loss_scale_manager
        self._float_status = _tf.constant([0.0], dtype=_tf.float32)
        self._is_distributed = is_distributed
        # sic: the adapter formats the *module* tensorflow.python.training.optimizer here
        self._name = "NPULossScaleOptimizermodule"
        from ... import CALLS

        CALLS.append(("NPULossScaleOptimizer", type(opt).__name__,
                      type(loss_scale_manager).__name__, is_distributed))

    def __getattr__(self, attr):
        if attr == "_opt":
            raise AttributeError(attr)
        return getattr(self._opt, attr)

    def compute_gradients(self, loss, var_list=None,
                          gate_gradients=_tf.compat.v1.train.Optimizer.GATE_OP,
                          aggregation_method=None, colocate_gradients_with_ops=False,
                          grad_loss=None):
        loss_scale = self._loss_scale_manager.get_loss_scale()
        value = loss() if callable(loss) else loss
        scaled = value * _tf.cast(loss_scale, value.dtype.base_dtype)
        grads_and_vars = self._opt.compute_gradients(
            scaled, var_list=var_list, gate_gradients=gate_gradients,
            aggregation_method=aggregation_method,
            colocate_gradients_with_ops=colocate_gradients_with_ops, grad_loss=grad_loss)
        inverse = _tf.math.reciprocal(loss_scale)
        return [(None if g is None else g * _tf.cast(inverse, g.dtype.base_dtype), v)
                for g, v in grads_and_vars]

    def _enable_overflow_check(self):
        if isinstance(self._loss_scale_manager, FixedLossScaleManager):
            return self._loss_scale_manager.get_enable_overflow_check()
        return True

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        from ...hccl import hccl_ops

        tf = _tf
        grads_and_vars = list(grads_and_vars)
        if self._enable_overflow_check():
            with tf.name_scope(self._name):
                grads = [g for g, _ in grads_and_vars if g is not None]
                with tf.control_dependencies(grads):
                    finite = [tf.reduce_all(tf.math.is_finite(
                        g.values if isinstance(g, tf.IndexedSlices) else g)) for g in grads]
                    local_status = tf.reshape(
                        tf.cast(tf.logical_not(tf.reduce_all(finite)), tf.float32), [1])
            if self._is_distributed:
                aggregated = hccl_ops.allreduce([local_status], "sum", fusion=0)
                is_overall_finite = tf.reduce_all(tf.equal(aggregated, 0),
                                                  name="overflow_status_reduce_all")
            else:
                is_overall_finite = tf.reduce_all(tf.equal(0.0, local_status),
                                                  name="overflow_status_reduce_all")
        else:
            is_overall_finite = tf.constant(True, dtype=tf.bool)

        def apply():
            return self._opt.apply_gradients(grads_and_vars, global_step, name)

        update_variables = tf.cond(is_overall_finite, apply, tf.no_op)
        return tf.group(update_variables,
                        self._loss_scale_manager.update_loss_scale(is_overall_finite))

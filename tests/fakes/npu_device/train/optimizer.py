"""``npu_device.train.optimizer.NpuLossScaleOptimizer``.

The real class subclasses tf.keras' LossScaleOptimizer (overflow from the NPU float status);
here it wraps the Keras one zoobench uses, so the runner's loss-scaling path runs for real.
"""

from __future__ import annotations


class NpuLossScaleOptimizer:
    def __init__(self, inner_optimizer, dynamic=True, initial_scale=None,
                 dynamic_growth_steps=None):
        import npu_device
        from harness.tfcompat import keras

        npu_device.CALLS.append(("NpuLossScaleOptimizer", type(inner_optimizer).__name__,
                                 dynamic, initial_scale))
        kwargs = {"dynamic": dynamic}
        if initial_scale is not None:
            kwargs["initial_scale"] = initial_scale
        if dynamic_growth_steps is not None:
            kwargs["dynamic_growth_steps"] = dynamic_growth_steps
        self._wrapped = keras.mixed_precision.LossScaleOptimizer(inner_optimizer, **kwargs)

    def __getattr__(self, name):
        if name == "_wrapped":
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    def get_scaled_loss(self, loss):
        import npu_device

        npu_device.CALLS.append(("get_scaled_loss",))
        return self._wrapped.get_scaled_loss(loss)

    def get_unscaled_gradients(self, grads):
        import npu_device

        npu_device.CALLS.append(("get_unscaled_gradients",))
        return self._wrapped.get_unscaled_gradients(grads)

"""A third party's model plugin: linear regression, registered only by its entry point."""

from __future__ import annotations

from harness.context import ModelSpec
from harness.plugins import hookimpl

MODEL = "linreg"


@hookimpl
def register_models(registry):
    registry.add(MODEL, description="linear regression on y = 3x + 1", params={"lr": 0.05})


@hookimpl
def build_dataset(case, split, ctx):
    if case.model != MODEL:
        return None
    from harness.tfcompat import tf

    x = tf.random.stateless_uniform([4096, 1], seed=[1, 2 if split == "train" else 3])
    ds = tf.data.Dataset.from_tensor_slices((x, 3.0 * x + 1.0))
    return ctx.shard(ds).batch(ctx.pipeline_batch_size, drop_remainder=True)


@hookimpl
def build_model(case, ctx):
    if case.model != MODEL:
        return None
    from harness.tfcompat import keras, tf

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def loss(labels, outputs):
        return tf.reduce_mean(tf.square(labels - outputs), axis=-1)

    return ModelSpec(model=model, loss=loss,
                     optimizer=keras.optimizers.SGD(learning_rate=case.params["lr"]),
                     metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
                     flops_per_sample=2.0)

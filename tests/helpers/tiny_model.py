"""A tiny model plugin for the harness tests: an MLP on a learnable synthetic task.

Labels are ``argmax(x @ W)`` for a fixed random ``W``, so accuracy can rise far above chance
(1 / num_classes) in a few hundred steps. Params inject faults and known step times.
"""

from __future__ import annotations

import os
import time

import numpy as np

from harness.context import ModelSpec
from harness.plugins import hookimpl

__version__ = "0.0.1"
MODEL = "tiny_mlp"
CALLS = {"steps": 0}


def _pool(seed: int, n: int, features: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    weights = np.random.default_rng(1234).normal(size=(features, classes)).astype("float32")
    x = np.random.default_rng(seed).normal(size=(n, features)).astype("float32")
    return x, np.argmax(x @ weights, axis=1).astype("int32")


@hookimpl
def register_models(registry):
    registry.add(MODEL, description="2-layer MLP on a learnable synthetic task",
                 params={"features": 16, "classes": 4, "hidden": 32, "learning_rate": 0.1,
                         "train_examples": 2048, "sleep_ms": 0.0, "warmup_sleep_ms": 0.0,
                         "nan_at_step": 0, "fail_at_step": 0, "interrupt_at_step": 0,
                         "exit_at_step": 0, "hang_at_step": 0, "fault_rank": -1,
                         "weight_decay": 0.0, "shuffle": True, "init_seed_per_rank": False},
                 sources=("synthetic",))


@hookimpl
def build_dataset(case, split, ctx):
    if case.model != MODEL:
        return None
    from harness.tfcompat import tf

    p = case.params
    seed = 1 if split == "train" else 2
    x, y = _pool(seed, p["train_examples"] if split == "train" else 512, p["features"],
                 p["classes"])
    ds = ctx.shard(tf.data.Dataset.from_tensor_slices((x, y)))
    if split == "train" and p["shuffle"]:
        ds = ds.shuffle(len(x), seed=case.seed)
    return ds.batch(ctx.pipeline_batch_size, drop_remainder=(split == "train"))


def _step_hook(p, warmup_steps):
    """Runs once per replica step on the host: sleeps and faults on schedule."""

    rank = int(os.environ.get("BENCH_RANK", "0"))
    faulty = p["fault_rank"] in (-1, rank)

    def hook(loss):
        CALLS["steps"] += 1
        step = CALLS["steps"]
        if faulty and p["exit_at_step"] and step >= p["exit_at_step"]:
            os._exit(13)  # a worker that dies without a word
        if faulty and p["hang_at_step"] and step >= p["hang_at_step"]:
            time.sleep(3600)
        sleep = p["warmup_sleep_ms"] if step <= warmup_steps else p["sleep_ms"]
        if sleep:
            time.sleep(sleep / 1000.0)
        if p["fail_at_step"] and step >= p["fail_at_step"]:
            raise RuntimeError(f"injected failure at step {step}")
        if p["nan_at_step"] and step >= p["nan_at_step"]:
            return np.float32("nan") * loss
        return loss

    return hook


@hookimpl
def build_model(case, ctx):
    if case.model != MODEL:
        return None
    from harness.tfcompat import keras, tf

    p = case.params
    CALLS["steps"] = 0
    # init_seed_per_rank: every rank of a process launch starts from other weights (what
    # broadcasting rank 0's weights must undo)
    seed = case.seed + int(os.environ.get("BENCH_RANK", "0"))
    layers = [{}, {}]
    # TF 1.15's tf.keras names its initializers in lower case only
    glorot = getattr(keras.initializers, "GlorotUniform", None) or keras.initializers.glorot_uniform
    for index, layer in enumerate(layers):
        if p["init_seed_per_rank"]:
            layer["kernel_initializer"] = glorot(seed=seed + index)
        if p["weight_decay"]:
            layer["kernel_regularizer"] = keras.regularizers.l2(p["weight_decay"])
    inputs = keras.Input((p["features"],))
    hidden = keras.layers.Dense(p["hidden"], activation="relu", **layers[0])(inputs)
    logits = keras.layers.Dense(p["classes"], dtype="float32", **layers[1])(hidden)
    model = keras.Model(inputs, logits)
    # TF 1.15's tf.keras.losses has no Reduction; its v2 namespace does
    reduction = getattr(keras.losses, "Reduction", None) or tf.compat.v2.keras.losses.Reduction
    xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction.NONE)
    faults = any(p[k] for k in ("sleep_ms", "warmup_sleep_ms", "nan_at_step", "fail_at_step",
                                "exit_at_step", "hang_at_step"))
    hook = _step_hook(p, case.train.warmup_steps)

    def loss(labels, outputs):
        per_example = xent(labels, outputs)
        if faults:
            # stateful by default; the stateful= argument is TF >= 2.8's
            hooked = tf.numpy_function(hook, [per_example], tf.float32)
            # the value comes from the hook (NaN included), the gradient from the real loss
            per_example = per_example + tf.stop_gradient(tf.reshape(hooked, [-1]) - per_example)
        return per_example

    flops = 2 * (p["features"] * p["hidden"] + p["hidden"] * p["classes"])
    return ModelSpec(model=model, loss=loss,
                     optimizer=keras.optimizers.SGD(learning_rate=p["learning_rate"]),
                     metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                     flops_per_sample=float(flops))


@hookimpl
def evaluate(case, model, dataset, ctx):
    if case.model != MODEL:
        return None
    from harness.tfcompat import tf

    def predict(features, labels):
        return tf.argmax(model(features, training=False), axis=1, output_type=tf.int32), labels

    correct = total = 0
    for predictions, labels in ctx.map_batches(predict, dataset):
        correct += int((predictions == labels).sum())
        total += len(predictions)
    return {"accuracy": correct / total}


@hookimpl
def configure_npu(case, options):
    if case.model == MODEL:
        options.setdefault("tiny_configured", True)


@hookimpl
def log_interval(case, record):
    at = case.params.get("interrupt_at_step", 0) if case.model == MODEL else 0
    if at and record["step"] >= at:
        raise KeyboardInterrupt
    return None


WRITTEN: list = []


@hookimpl
def environment(env):
    env["tiny_fact"] = "from the tiny plugin"


@hookimpl
def report_written(report, path):
    WRITTEN.append((report["run_id"], path))


@hookimpl
def register_commands(cli):
    import click

    @click.command(name="tiny-hello")
    @click.argument("who")
    def hello(who):
        """Say hello (a plugin-added subcommand)."""
        click.echo(f"hello {who} from tiny_model")

    cli.add_command(hello)

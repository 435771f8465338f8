#!/usr/bin/env python3
"""Harness overhead: `bench run`'s samples/s vs a bare tf.function loop, same model and batch.

Both loops run in this one process, alternating (bare, harness, bare, harness, ...), on 1 device
with the case's model, batch and data built through the same hooks. Prints each figure and the
ratio harness / bare (target >= 0.98).

    python benchmarks/overhead.py cases/quickstart.yaml --steps 60 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def bare_samples_per_sec(case, plugins, steps: int, warmup: int) -> float:
    """The simplest honest loop: one tf.function step per call, synced at the ends."""
    from harness.context import RunContext
    from harness.tfcompat import keras, tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(case.seed)
    ctx = RunContext(devices=1, batch_size=case.batch_size, global_batch_size=case.batch_size,
                     train_steps=steps + warmup, seed=case.seed)
    hooks = plugins.model_hooks(case)
    dataset = hooks.build_dataset("train", ctx)
    if int(dataset.cardinality()) > 0:
        ctx.steps_per_epoch = int(dataset.cardinality())
        dataset = dataset.repeat()
    spec = hooks.build_model(ctx)
    model, optimizer, loss_fn = spec.model, spec.optimizer, spec.loss
    iterator = iter(dataset)

    @tf.function
    def step():
        features, labels = next(iterator)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(loss_fn(labels, model(features, training=True)),
                                          tf.float32))
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(warmup):
        loss = step()
    float(loss)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    return steps * case.batch_size / (time.perf_counter() - start)


def harness_samples_per_sec(case, plugins, backend, options) -> float:
    from harness.run.progress import PlainProgress
    from harness.run.runner import Job, Runner

    class Quiet(PlainProgress):
        def print(self, line: str) -> None:
            pass

    job = Job(case, plugins, backend, options, Quiet(), lambda line: None)
    result = Runner(job).measure(1)
    if result.status != "ok":
        raise SystemExit(f"harness run failed: {result.error}")
    return result.throughput["samples_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default="cases/quickstart.yaml")
    parser.add_argument("--case-name", help="which case of a multi-case file (default: first)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from dataclasses import replace

    from harness.run.plan import device_options, load

    overrides = args.overrides + [
        "devices=[1]", "device=cpu", f"train.steps={args.steps + args.warmup}",
        f"train.warmup_steps={args.warmup}", f"train.log_every={args.steps}", "eval.at_end=false",
        "eval.every_steps=null", "train.epochs=null"]
    plugins, cases = load([args.case], overrides, args.plugin)
    case = next((c for c in cases if c.name == args.case_name), cases[0]) if args.case_name \
        else cases[0]
    case = replace(case, train=replace(case.train, log_every=args.steps))
    backend = plugins.devices.get("cpu")()
    options = device_options(case, plugins)
    backend.prepare(case, 1, options)

    bare, harness = [], []
    for _ in range(args.repeats):
        bare.append(bare_samples_per_sec(case, plugins, args.steps, args.warmup))
        harness.append(harness_samples_per_sec(case, plugins, backend, options))
    ratio = statistics.median(harness) / statistics.median(bare)
    print(json.dumps({"case": case.name, "model": case.model, "batch": case.batch_size,
                      "steps": args.steps, "bare_samples_per_sec": bare,
                      "harness_samples_per_sec": harness, "ratio_median": ratio}))
    print(f"bench run / bare tf.function loop = {ratio:.3f} (target >= 0.98)", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Harness overhead: zoobench's measured samples/s against a bare tf.function loop and Keras fit.

On one CPU device, in this one process, alternating round by round, on the same model, data and
batch (built through the same plugin hooks, a fresh model each time):

* ``bare``: the simplest honest loop, one ``tf.function`` step per call, synced at the ends;
* ``zoobench@1`` and ``zoobench@N``: the runner (``Runner.measure``) at ``train.steps_per_loop``
  1 and N (N steps per compiled call);
* ``fit@N``: Keras ``model.fit(steps_per_execution=N)``, timed by a callback from the end of
  its warmup executions to the end of the last (on the CPU a call returns when it is done).

Default: the tests' MLP (tests/helpers/tiny_model.py) at hidden 512, batch 256, a ~2.7 ms step
on a 2-core CPU, where per-call Python overhead shows. Prints every figure, then the medians'
ratios (targets: zoobench@N >= 0.99x bare and >= 1.0x fit@N).

    python benchmarks/overhead.py                        # the tiny MLP
    python benchmarks/overhead.py cases/quickstart.yaml --case-name quickstart_resnext50 \
        --steps 30 --loop 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.join(os.path.dirname(HERE), "tests", "helpers")
TINY_MLP = {"model": "tiny_mlp", "device": "cpu", "devices": [1], "batch_size": 256,
            "params": {"hidden": 512}, "eval": {"at_end": False}}


def _fresh(case, plugins, steps: int):
    """Data and a freshly built model through the plugin hooks (as the runner builds them)."""
    from harness import tfcompat
    from harness.context import RunContext
    from harness.tfcompat import keras

    keras.backend.clear_session()
    tfcompat.set_random_seed(case.seed)
    ctx = RunContext(devices=1, batch_size=case.batch_size, global_batch_size=case.batch_size,
                     train_steps=steps, seed=case.seed)
    hooks = plugins.model_hooks(case)
    dataset = hooks.build_dataset("train", ctx)
    if int(dataset.cardinality()) > 0:
        ctx.steps_per_epoch = int(dataset.cardinality())
        dataset = dataset.repeat()
    return dataset, hooks.build_model(ctx)


def bare(case, plugins, steps: int, warmup: int) -> float:
    """One tf.function step per call, synced after the warmup and at the end."""
    from harness.tfcompat import tf

    dataset, spec = _fresh(case, plugins, steps + warmup)
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


def fit(case, plugins, steps: int, warmup: int, per_execution: int) -> float:
    """Keras ``fit`` with ``steps_per_execution``; the window is the executions after warmup."""
    from harness.tfcompat import keras

    dataset, spec = _fresh(case, plugins, steps + warmup)
    marks: dict[int, float] = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks[batch] = time.perf_counter()  # batch: the last step of the execution

    model = spec.model
    model.compile(optimizer=spec.optimizer, loss=spec.loss, steps_per_execution=per_execution)
    model.fit(dataset, epochs=1, steps_per_epoch=steps + warmup, verbose=0, callbacks=[Clock()])
    ends = sorted(marks)
    first = next(b for b in ends if b + 1 >= warmup)  # the execution that ends the warmup
    last = ends[-1]
    return (last - first) * case.batch_size / (marks[last] - marks[first])


def zoobench(case, plugins, backend, options, steps_per_loop: int) -> float:
    from dataclasses import replace

    from harness.run.progress import PlainProgress
    from harness.run.runner import Job, Runner

    class Quiet(PlainProgress):
        def print(self, line: str) -> None:
            pass

    case = replace(case, train=replace(case.train, steps_per_loop=steps_per_loop))
    result = Runner(Job(case, plugins, backend, options, Quiet(), lambda line: None)).measure(1)
    if result.status != "ok":
        raise SystemExit(f"zoobench run failed: {result.error}")
    return result.throughput["samples_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", help="a case file (default: the tests' MLP)")
    parser.add_argument("--case-name", help="which case of a multi-case file (default: first)")
    parser.add_argument("--steps", type=int, default=600, help="measured steps")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--loop", type=int, default=10, help="N: steps per loop / execution")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.steps % args.loop or args.warmup % args.loop:
        parser.error("--steps and --warmup must be multiples of --loop")

    from harness.run.plan import device_options, load
    from harness.testing import write_case

    case_file, plugin_modules = args.case, list(args.plugin)
    if case_file is None:
        import tempfile

        sys.path.insert(0, HELPERS)
        case_file = write_case(tempfile.mkdtemp(), TINY_MLP)
        plugin_modules.append("tiny_model")
    overrides = args.overrides + [
        "devices=[1]", "device=cpu", f"train.steps={args.steps + args.warmup}",
        f"train.warmup_steps={args.warmup}", f"train.log_every={args.steps}",
        "eval.at_end=false", "eval.every_steps=null", "train.epochs=null"]
    plugins, cases = load([case_file], overrides, plugin_modules)
    case = next(c for c in cases if c.name == args.case_name) if args.case_name else cases[0]
    backend = plugins.devices.get("cpu")()
    options = device_options(case, plugins)
    backend.prepare(case, 1, options)

    n = args.loop
    runs: dict[str, list[float]] = {"bare": [], "zoobench@1": [], f"zoobench@{n}": [],
                                    f"fit@{n}": []}
    for _ in range(args.repeats):  # alternating, so drifting load hits every column alike
        runs["bare"].append(bare(case, plugins, args.steps, args.warmup))
        runs["zoobench@1"].append(zoobench(case, plugins, backend, options, 1))
        runs[f"zoobench@{n}"].append(zoobench(case, plugins, backend, options, n))
        runs[f"fit@{n}"].append(fit(case, plugins, args.steps, args.warmup, n))
    # medians, and the best of each (on a machine others load, the best is the run that was
    # least disturbed; the medians are the figures when it is quiet)
    stats = {"median": {k: statistics.median(v) for k, v in runs.items()},
             "best": {k: max(v) for k, v in runs.items()}}
    pairs = [(f"zoobench@{n}", "bare", 0.99), (f"zoobench@{n}", f"fit@{n}", 1.0),
             ("zoobench@1", "bare", None)]
    ratios = {kind: {f"{a} / {b}": stats[kind][a] / stats[kind][b] for a, b, _ in pairs}
              for kind in stats}
    print(json.dumps({"case": case.name, "model": case.model, "batch": case.batch_size,
                      "steps": args.steps, "samples_per_sec": runs, **stats, "ratios": ratios,
                      "load_1min": os.getloadavg()[0]}))
    for name, values in runs.items():
        print(f"{name:>14}: median {stats['median'][name]:10.1f}  best {stats['best'][name]:10.1f}"
              f" samples/s  ({', '.join(f'{v:.1f}' for v in values)})", file=sys.stderr)
    for a, b, target in pairs:
        wanted = f" (target >= {target:.2f})" if target else ""
        print(f"{a + ' / ' + b:>24} = {ratios['median'][a + ' / ' + b]:.3f} of the medians, "
              f"{ratios['best'][a + ' / ' + b]:.3f} of the best{wanted}", file=sys.stderr)


if __name__ == "__main__":
    main()

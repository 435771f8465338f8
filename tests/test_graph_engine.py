"""The graph engine (tf.compat.v1.Session; TF 1.x, or engine: graph on TF 2) against the eager
one: the same loss curve for the same case and seed, the same report schema, N-step loops."""

from __future__ import annotations

import pytest

from harness import tfcompat

pytestmark = pytest.mark.core

eager_only = pytest.mark.skipif(not tfcompat.executes_eagerly(),
                                reason="TF 1.x: no eager engine to compare with")
# On TF 2.6.5 (keras 2.6) the two engines' curves differ at every point, by up to 9 % (seen
# 2026-12-01). Likely cause, not proven: Keras 2.6 draws unseeded initial weights from op seeds
# TensorFlow counts per graph op in a graph and per eager op eagerly, where Keras >= 2.7 seeds
# its initializers from the seeded Python RNG.
same_initial_weights = pytest.mark.skipif(
    tfcompat.tf_version() < (2, 7),
    reason="Keras 2.6: the engines start from other weights (see the comment above)")


def _schema(value):
    """The report's shape: keys of every mapping, the first item's shape for lists."""
    if isinstance(value, dict):
        return {k: _schema(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_schema(value[0])] if value else []
    return type(value).__name__ if value is not None else None


def _keys(value, prefix=""):
    if isinstance(value, dict):
        return {f"{prefix}{k}" for k in value} | {
            p for k, v in value.items() for p in _keys(v, f"{prefix}{k}.")}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _keys(value[0], prefix + "[].")
    return set()


@eager_only
@same_initial_weights
@pytest.mark.parametrize("model,loop", [("tiny_mlp", 1), ("resnext50", 4)])
def test_graph_and_eager_engines_give_the_same_loss_curve(bench_run, tiny, tiny_case, model,
                                                         loop):
    # loop 4: the eager engine's tf.range loop against the graph engine's tf.while_loop
    case = dict(tiny_case, seed=3, train={"steps": 24, "warmup_steps": 4, "log_every": 4,
                                          "steps_per_loop": loop})
    if model == "resnext50":
        case.update(model="resnext50", batch_size=8,
                    params={"image_size": 32, "groups": 4, "width_per_group": 2,
                            "base_width": 8, "blocks": [1, 1, 1, 1], "num_classes": 10})
    reports = {engine: bench_run(dict(case, engine=engine), plugins=[tiny]).report
               for engine in ("eager", "graph")}
    eager, graph = (reports[k]["results"][0] for k in ("eager", "graph"))
    assert eager["status"] == graph["status"] == "ok", (eager["error"], graph["error"])
    assert (eager["engine"], graph["engine"]) == ("eager", "graph")
    steps = [s for s, _ in eager["loss"]["curve"]]
    assert steps == [s for s, _ in graph["loss"]["curve"]] == [8, 12, 16, 20, 24]
    assert [v for _, v in graph["loss"]["curve"]] == pytest.approx(
        [v for _, v in eager["loss"]["curve"]], rel=1e-4)
    assert graph["accuracy"] == pytest.approx(eager["accuracy"], abs=1e-6)
    assert graph["measured_steps"] == eager["measured_steps"] == 20
    assert [len(i) for i in (eager["throughput"]["intervals"], graph["throughput"]["intervals"])] \
        == [5, 5]
    # the graph engine's runs fill the time breakdown too: first loop apart, the window measured
    for key in ("init_s", "first_loop_s", "measured_s", "eval_s"):
        assert graph["time"][key] > 0, (key, graph["time"])
    assert graph["time"]["measured_s"] == pytest.approx(
        sum(i["seconds"] for i in graph["throughput"]["intervals"]))
    # one report schema: the same keys everywhere (values differ: times, digests)
    assert _keys(reports["graph"]) == _keys(reports["eager"])
    assert _schema(graph["throughput"]) == _schema(eager["throughput"])


def _engine(tf, keras, steps_per_loop):
    from harness.context import ModelSpec
    from harness.devices.base import DeviceBackend
    from harness.run.graph_engine import GraphEngine

    tfcompat.set_random_seed(5)
    x = tf.random.stateless_normal([320, 6], seed=[1, 2])
    y = tf.cast(tf.reduce_sum(x[:, :2], axis=1) > 0, tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16, drop_remainder=True)
    inputs = keras.Input((6,))
    init = keras.initializers.glorot_uniform(seed=9)  # TF 1.15's tf.keras: lower case only
    model = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer=init)(inputs))
    reduction = getattr(keras.losses, "Reduction", None) or tf.compat.v2.keras.losses.Reduction
    xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction.NONE)
    sgd = getattr(keras.optimizers, "legacy", keras.optimizers).SGD(0.5)
    spec = ModelSpec(model, xent, sgd)
    return GraphEngine(tf.distribute.get_strategy(), spec, dataset, 16, DeviceBackend(),
                       steps_per_loop=steps_per_loop, capacity=8)


def test_a_loop_of_n_steps_per_run_matches_single_steps():
    from harness.tfcompat import keras, tf

    losses, iterations, lrs = {}, {}, {}
    for n in (1, 4):
        with tf.Graph().as_default():
            engine = _engine(tf, keras, n)
            handles = [engine.launch(n) for _ in range(8 // n)]
            losses[n] = engine.wait(handles)
            handles = [engine.launch(n) for _ in range(4 // n)]  # slots wrap around
            losses[n] += engine.wait(handles)
            iterations[n] = engine.session.run(engine.spec.optimizer.iterations)
            lrs[n] = engine.learning_rate(12)
            if n == 4:  # a shorter last loop of the while_loop
                assert len(engine.wait([engine.launch(3)])) == 3
            engine.close()
    assert iterations == {1: 12, 4: 12}
    assert losses[4] == pytest.approx(losses[1], rel=1e-6)
    assert losses[1][-1] < losses[1][0]
    assert lrs == {1: pytest.approx(0.5), 4: pytest.approx(0.5)}


def test_launches_beyond_the_loss_buffer_are_refused():
    from harness.tfcompat import keras, tf

    with tf.Graph().as_default():
        engine = _engine(tf, keras, 4)
        engine.launch(4)
        engine.launch(4)
        with pytest.raises(ValueError, match="9 steps launched without a wait"):
            engine.launch(1)
        with pytest.raises(ValueError, match="1 to 4 steps per launch"):
            engine.launch(5)
        engine.close()


@pytest.mark.skipif(tfcompat.executes_eagerly(), reason="TF 2 runs eagerly")
def test_engine_eager_on_tf1_is_bad_input(bench_cli, tmp_path, tiny_case):
    from harness.testing import write_case

    path = write_case(tmp_path, {**tiny_case, "engine": "eager"})
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model")
    assert result.exit_code == 2 and not (tmp_path / "r").exists()
    assert result.stderr.strip() == (
        f"bench: error: {path}: engine: eager cannot run: TensorFlow "
        f"{tfcompat.tf_version_string()} runs graph mode only here (no eager execution); "
        f"use graph or auto")


@pytest.mark.parametrize("extra,args,key", [
    ({"train": {"steps": 20, "warmup_steps": 4, "log_every": 4, "checkpoint_every": 8}}, (),
     "train.checkpoint_every"),
    ({"data": {"source": "synthetic", "probe_steps": 5}}, (), "data.probe_steps"),
    ({"profile": {"start_step": 9, "steps": 4}}, (), "profile.steps"),
    ({}, ("--input-only",), "--input-only"),
])
def test_eager_only_measurements_on_the_graph_engine_are_bad_input(bench_cli, tmp_path,
                                                                   tiny_case, extra, args, key):
    from harness.testing import write_case

    case = {**tiny_case, "engine": "graph", **extra}
    if "train" not in extra:
        case["train"] = {"steps": 20, "warmup_steps": 4, "log_every": 4}
    path = write_case(tmp_path, case)
    result = bench_cli("run", path, "--out", str(tmp_path / "r"), "--plugin", "tiny_model",
                       *args)
    assert result.exit_code == 2 and not (tmp_path / "r").exists(), result.stderr
    where = f"{path}: {key}" if not key.startswith("--") else key
    assert result.stderr.strip() == (
        f"bench: error: {where}: not available on the graph engine (TF 1.x or engine: graph) "
        f"yet; it needs TF 2's eager engine")

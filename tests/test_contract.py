"""The plugin contract, each rule with a small throwaway plugin: model tasks, greedy plain
hooks refused, checked hook names and arguments, full train batches, a per-example loss,
eval targets (at least / at most, a metric the eval never returns), build errors not retried,
data sources."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from engines import multi_device

from harness import BenchError, ModelSpec, Task, hookimpl
from harness.plugins import load_plugins

pytestmark = pytest.mark.core
INSTANCES: list = []


class LinearTask(Task):
    """Linear regression on y = 3x + 1 as a task; ``self`` keeps what the run needs."""

    def __init__(self, case):
        super().__init__(case)
        self.builds = 0
        self.lines = []
        INSTANCES.append(self)

    def build_dataset(self, split, ctx):
        from harness.tfcompat import tf

        n = 4096 if split == "train" else 500  # 500: the last eval batch is short
        x = tf.random.stateless_uniform([n, 1], seed=[1, 2 if split == "train" else 3])
        ds = ctx.shard(tf.data.Dataset.from_tensor_slices((x, 3.0 * x + 1.0)))
        partial = self.case.params["partial_train_batch"]
        return ds.batch(ctx.pipeline_batch_size,
                        drop_remainder=split == "train" and not partial)

    def build_model(self, ctx):
        from harness.tfcompat import keras, tf

        self.builds += 1
        if self.case.params["fail_build"]:
            raise RuntimeError("the weights file is missing")
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

        def loss(y, out):
            per_example = tf.reduce_mean(tf.square(y - out), axis=-1)
            return tf.reduce_mean(per_example) if self.case.params["scalar_loss"] else per_example

        return ModelSpec(model=model, loss=loss,
                         optimizer=keras.optimizers.SGD(learning_rate=self.case.params["lr"]))

    def evaluate(self, model, dataset, ctx):
        from harness.tfcompat import tf

        def sums(x, y):  # ctx.map_batches: a tf.function eagerly, the session's graph on TF 1
            return tf.reduce_sum(tf.square(model(x) - y)), tf.shape(x)[0]

        total, count = 0.0, 0
        for error, examples in ctx.map_batches(sums, dataset):
            total += float(error)
            count += int(examples)
        return {"mse": total / count, "examples": float(count)}

    def log_line(self, record, ctx):
        self.lines.append((record["step"], ctx.devices, ctx.model_spec is not None))
        return f"linear step {record['step']} on {ctx.devices} device(s)"


@hookimpl
def _register_linear(registry):
    registry.add("linear", task=LinearTask, description="y = 3x + 1",
                 params={"lr": 0.1, "scalar_loss": False, "partial_train_batch": False,
                         "fail_build": False})


LINEAR = SimpleNamespace(__name__="linear_plugin", __version__="2.0",
                         register_models=_register_linear)


def linear_case(**keys):
    case = {"name": "lin", "model": "linear", "batch_size": 32,
            "train": {"steps": 40, "warmup_steps": 4, "log_every": 10}}
    case.update(keys)
    return case


def _greedy_build_model(case, ctx):  # forgets "if case.model != ...: return None"
    from harness.tfcompat import keras

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
    return ModelSpec(model=model, optimizer=keras.optimizers.SGD(0.1),
                     loss=keras.losses.SparseCategoricalCrossentropy(
                         from_logits=True, reduction="none"))  # TF 1.15: no keras.losses.Reduction


def greedy(name, extends=None):
    @hookimpl
    def register_models(registry):
        registry.add(f"{name}_model", params={})
        if extends:
            registry.extend(extends)

    return SimpleNamespace(__name__=name, register_models=register_models,
                           build_model=hookimpl(_greedy_build_model))


# --- tasks ---------------------------------------------------------------------------------


@multi_device  # 2 devices in one process
def test_a_task_answers_its_model_keeps_its_state_and_the_report_names_it(bench_run):
    INSTANCES.clear()
    outcome = bench_run(linear_case(devices=[1, 2]), plugins=[LINEAR])
    assert outcome.report["status"] == "ok" and outcome.exit_code == 0
    (task,) = INSTANCES  # one task instance for the run, both device counts
    assert task.builds == 2
    assert [line[:2] for line in task.lines] == [(10, 1), (20, 1), (30, 1), (40, 1),
                                                 (10, 2), (20, 2), (30, 2), (40, 2)]
    assert all(line[2] for line in task.lines)  # ctx.model_spec is set for the log line
    log = open(os.path.join(outcome.folder, "train.log")).read()
    assert "linear step 40 on 2 device(s)" in log
    served = outcome.report["model_hooks"]
    for hook in ("build_dataset", "build_model", "evaluate", "log_interval"):
        assert served[hook] == {"plugin": "linear_plugin", "distribution": None,
                                "version": "2.0"}, hook
    for result in outcome.report["results"]:
        assert result["accuracy"]["mse"] < 0.3  # predicting the mean of y: 0.75
        assert result["accuracy"]["examples"] == 500  # the whole split, short batch included


def test_the_in_tree_models_are_tasks_and_name_their_distribution():
    from plugins.bert import BertTask
    from plugins.resnext50 import ResNeXt50Task

    plugins = load_plugins()
    assert plugins.models.get("resnext50").task is ResNeXt50Task
    assert plugins.models.get("bert").task is BertTask
    assert plugins.infos["resnext50"].distribution == "zoobench"


def test_a_task_with_a_misspelled_or_missing_method_is_refused_in_one_line():
    class Misspelled(LinearTask):
        def build_modle(self, ctx):
            return None

    class Missing(Task):
        def build_dataset(self, split, ctx):
            return None

    class WrongArgs(LinearTask):
        def build_dataset(self, split):
            return None

    for task, message in ((Misspelled, "method 'build_modle' is not a task method (did you "
                                       "mean 'build_model'?)"),
                          (Missing, "does not define build_model()"),
                          (WrongArgs, "build_dataset(self, split) cannot be called as "
                                      "build_dataset(self, split, ctx)")):
        @hookimpl
        def register_models(registry, task=task):
            registry.add("bad", task=task)

        plugin = SimpleNamespace(__name__="bad_task", register_models=register_models)
        with pytest.raises(BenchError) as info:
            load_plugins(objects=[plugin]).models.names()
        assert str(info.value) == f"plugin \"bad_task\": model 'bad': task {task.__name__}: " \
                                  f"{message}"


# --- greedy plain hooks ----------------------------------------------------------------------


def test_a_greedy_plain_hook_is_refused_naming_plugin_hook_and_model(bench_run, tiny, tiny_case):
    for victim, case in ((tiny, {**tiny_case, "devices": [1, 2]}),
                         (LINEAR, linear_case(devices=[1, 2]))):
        outcome = bench_run(case, plugins=[victim, greedy("greedy")])
        assert outcome.exit_code == 2 and outcome.report["status"] == "failed"
        (result,) = outcome.report["results"]  # not retried at 2 devices
        model = case["model"]
        owner = "tiny_model" if victim is tiny else "linear_plugin"
        assert result["error"] == (
            f"plugin \"greedy\": build_model() returned a value for model '{model}', which "
            f"plugin \"{owner}\" registered; a model hook returns None for other plugins' "
            f"models (or its plugin declares registry.extend('{model}') in register_models)")
        assert result["faulty_plugin"] == "greedy"
        assert outcome.report["skipped_devices"] == [2]


def test_a_plugin_that_declares_it_extends_a_model_answers_for_it(bench_run, tiny, tiny_case):
    extender = greedy("extender", extends="tiny_mlp")

    @hookimpl
    def log_interval(case, record, ctx):  # a plain log_interval gets the run's ctx too
        return f"extended step {record['step']} of {ctx.devices}, {type(ctx.model_spec).__name__}"

    extender.log_interval = log_interval
    outcome = bench_run(tiny_case, plugins=[tiny, extender])
    assert outcome.report["status"] == "ok", outcome.report["results"][0]["error"]
    served = outcome.report["model_hooks"]
    assert served["build_model"]["plugin"] == "extender"
    assert served["log_interval"]["plugin"] == "extender"
    assert served["build_dataset"]["plugin"] == "tiny_model"
    log = open(os.path.join(outcome.folder, "train.log")).read()
    assert "extended step 40 of 1, ModelSpec" in log


def test_a_greedy_configure_npu_is_refused_before_anything_is_written(bench_run, tiny, tiny_case,
                                                                      tmp_path):
    @hookimpl
    def configure_npu(case, options):
        options["precision_mode"] = "force_fp16"  # for every model: not its business

    plugin = SimpleNamespace(__name__="meddler", configure_npu=configure_npu)
    with pytest.raises(BenchError, match=r"^plugin \"meddler\": configure_npu\(\) changed the "
                                         r"device options \(precision_mode\) for model "
                                         r"'tiny_mlp', which plugin \"tiny_model\" registered"):
        bench_run(tiny_case, plugins=[tiny, plugin])
    assert not (tmp_path / "reports").exists()


# --- checked hooks ---------------------------------------------------------------------------


def test_a_misspelled_hook_name_or_argument_is_one_line(tmp_path):
    @hookimpl
    def build_modle(case, ctx):
        return None

    @hookimpl
    def build_model(case, context):
        return None

    for hooks, message in (
            ({"build_modle": build_modle},
             "unknown hook 'build_modle' (did you mean 'build_model'?); the hooks are "
             "documented in harness/hookspecs.py"),
            ({"build_model": build_model},
             "hook build_model(case, context): unknown argument 'context' (did you mean "
             "'ctx'?); the spec is build_model(case, ctx)")):
        plugin = SimpleNamespace(__name__="typo", **hooks)
        with pytest.raises(BenchError) as info:
            load_plugins(objects=[plugin])
        assert str(info.value) == f'plugin "typo": {message}'


def test_bench_run_with_a_misspelled_hook_exits_2_in_one_line(tmp_path, bench_cli, monkeypatch,
                                                             tiny_case):
    (tmp_path / "typo_plugin.py").write_text(
        "from harness import hookimpl\n\n\n@hookimpl\ndef build_model(case, contxt):\n"
        "    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness.testing import write_case

    path = write_case(tmp_path, tiny_case)
    result = bench_cli("run", path, "--plugin", "tiny_model", "--plugin", "typo_plugin",
                       "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "bench: error: plugin \"typo_plugin\": hook build_model(case, contxt): unknown argument "
        "'contxt' (did you mean 'ctx'?); the spec is build_model(case, ctx)"]
    assert not (tmp_path / "r").exists()


# --- what the runner checks --------------------------------------------------------------------


@multi_device  # 2 devices in one process
def test_a_scalar_loss_is_refused_naming_the_plugin(bench_run):
    outcome = bench_run(linear_case(devices=[2, 1], params={"scalar_loss": True}),
                        plugins=[LINEAR])
    assert outcome.exit_code == 2 and outcome.report["status"] == "failed"
    (result,) = outcome.report["results"]
    assert result["error"] == (
        'plugin "linear_plugin": ModelSpec.loss returned shape []; it must return one loss '
        "per example, shape [batch] = [32] (the runner averages it over the global batch)")
    assert result["devices"] == 2 and outcome.report["skipped_devices"] == [1]


def test_a_partial_train_batch_is_refused_naming_the_plugin(bench_run):
    outcome = bench_run(linear_case(params={"partial_train_batch": True}), plugins=[LINEAR])
    assert outcome.exit_code == 2
    assert outcome.report["results"][0]["error"] == (
        'plugin "linear_plugin": build_dataset(\'train\'): the batches of features are of '
        "unknown size, not ctx.pipeline_batch_size (32); the runner counts every step as a "
        "full batch, so batch with drop_remainder=True")


def test_a_build_error_is_not_retried_at_every_count(bench_run):
    INSTANCES.clear()
    outcome = bench_run(linear_case(devices=[1, 2, 4], params={"fail_build": True}),
                        plugins=[LINEAR])
    assert outcome.exit_code == 3 and outcome.report["status"] == "failed"
    (result,) = outcome.report["results"]
    assert result["error"] == "RuntimeError: the weights file is missing"
    assert result["failed_in"] == "build" and "faulty_plugin" not in result
    assert outcome.report["skipped_devices"] == [2, 4] and INSTANCES[0].builds == 1
    log = open(os.path.join(outcome.folder, "train.log")).read()
    assert "devices 2, 4 not run" in log and "Traceback" in log


def test_a_target_metric_the_eval_never_returns_fails_with_the_report(bench_run):
    case = linear_case(devices=[1, 2], eval={"target": {"r2": 0.9}, "every_steps": 20})
    outcome = bench_run(case, plugins=[LINEAR])
    assert outcome.exit_code == 3 and outcome.report["status"] == "failed"
    (result,) = outcome.report["results"]
    assert result["error"] == (f"{outcome.case.source}: eval.target: metric 'r2' is not among "
                               f'the metrics plugin "linear_plugin" evaluates (mse, examples)')
    assert result["failed_in"] == "eval" and result["measured_steps"] == 16  # the first eval
    assert os.path.exists(os.path.join(outcome.folder, "report.json"))


def test_an_at_most_target_gives_time_to_accuracy(bench_run):
    case = linear_case(train={"steps": 120, "warmup_steps": 2, "log_every": 10},
                       eval={"every_steps": 10, "target": {"mse": {"at_most": 0.1},
                                                           "examples": 500}})
    outcome = bench_run(case, plugins=[LINEAR])
    assert outcome.report["status"] == "ok"
    assert outcome.report["case"]["eval"]["target"] == {"mse": {"at_most": 0.1},
                                                        "examples": {"at_least": 500.0}}
    result = outcome.report["results"][0]
    evals = result["evals"]
    first = next(e for e in evals if e["mse"] <= 0.1)
    assert evals[0]["mse"] > 0.1 and first is not evals[-1]  # met during the run, not at once
    assert result["target_met"] is True
    assert result["time_to_accuracy_s"] == first["elapsed_s"]
    never = bench_run({**case, "name": "never",
                       "eval": {"every_steps": 40, "target": {"mse": {"at_most": 1e-12}}}},
                      plugins=[LINEAR])
    result = never.report["results"][0]
    assert never.exit_code == 0 and result["target_met"] is False
    assert result["time_to_accuracy_s"] is None


@pytest.mark.parametrize("target, message", [
    ({"mse": {"below": 1}}, "mse: expected a number or one of {at_least: x}, {at_most: x}, "
                            "got {'below': 1}"),
    ({"mse": {"at_most": "low"}}, "mse: expected a number, got 'low'"),
    ({"mse": [0.1]}, "mse: expected a number, got [0.1]"),
    ({"mse": {"at_most": float("inf")}}, "mse: expected a finite number, got inf"),
])
def test_bad_targets_are_one_line(bench_run, target, message):
    with pytest.raises(BenchError, match=r"case.yaml: eval.target: " + _re(message)):
        bench_run(linear_case(eval={"target": target}), plugins=[LINEAR])


def _re(text):
    import re

    return re.escape(text)


# --- data sources --------------------------------------------------------------------------


def test_data_source_defaults_to_the_first_declared_and_pathless_sources_need_no_path(tmp_path):
    from harness.run.plan import load_cases
    from harness.testing import write_case

    @hookimpl
    def register_models(registry):
        registry.add("shipped", sources=("package", "tfrecord"), pathless_sources=("package",))
        registry.add("files", sources=("tfrecord", "synthetic"))

    plugin = SimpleNamespace(__name__="sources", register_models=register_models)
    plugins = load_plugins(objects=[plugin])
    (case,) = load_cases([write_case(tmp_path, {"model": "shipped"})], [], plugins)
    assert (case.data.source, case.data.path) == ("package", None)
    with pytest.raises(BenchError, match=r"case.yaml: data.path: data.source 'tfrecord' needs "
                                         r"a path"):
        load_cases([write_case(tmp_path, {"model": "files"})], [], plugins)
    (case,) = load_cases([write_case(tmp_path, {"model": "files",
                                                "data": {"source": "synthetic"}})], [], plugins)
    assert case.data.source == "synthetic"


def test_a_task_that_raises_before_the_run_is_one_line_naming_its_plugin(bench_run, tmp_path):
    class Crashing(LinearTask):
        def validate(self):
            return self.case.params["no_such_param"]

    @hookimpl
    def register_models(registry):
        registry.add("crashing", task=Crashing)

    plugin = SimpleNamespace(__name__="crashing_plugin", register_models=register_models)
    with pytest.raises(BenchError) as info:
        bench_run({"model": "crashing"}, plugins=[plugin])
    assert str(info.value) == "plugin \"crashing_plugin\": validate(): KeyError: 'no_such_param'"
    assert not (tmp_path / "reports").exists()

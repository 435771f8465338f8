"""Every zoobench hook, documented: this module is the plugin author's reference.

A plugin is a module (or object) with functions marked ``@hookimpl``. A model plugin
registers each model with a task (:class:`harness.Task`), which answers that model's
build_dataset / build_model / evaluate / log line / configure_npu / validate::

    from harness import Task, hookimpl

    class MlpTask(Task):
        def build_dataset(self, split, ctx): ...
        def build_model(self, ctx): ...

    @hookimpl
    def register_models(registry):
        registry.add("mlp", task=MlpTask, description="a small MLP", params={"hidden": 64})

The model hooks below are the low-level layer the task stands on; a plugin may implement
them directly instead ("plain" hooks). The harness asks, for a case's model, the plugins
that declared ``registry.extend(model)``, then the model's task (or the plain hooks of the
plugin that registered the model), then the builtins; it also asks every other plugin, and
one that answers for a model it did not register is refused (one line naming plugin, hook
and model, exit 2): so a plain model hook returns None for other models
(``if case.model != "mlp": return None``). The report's ``model_hooks`` says which plugin
(distribution, version) answered each. Hook names and argument names are checked when a
plugin loads (``build_modle``, ``build_model(case, context)``: one line, exit 2).

**Eval rule**: every metric is computed over the whole eval split, whatever the launcher.
The eval dataset is built with a context of one input pipeline (``ctx.shard`` returns the
dataset whole, ``ctx.pipeline_batch_size`` is unchanged), so each process of a
``launcher: process`` count evaluates the whole split and rank 0's metrics are reported;
batch eval data without ``drop_remainder`` so the last examples count.

Register hooks (``register_*``) are called on every plugin and receive a registry object.
Plugin modules should not import TensorFlow at import time (``bench --help`` must stay fast):
import it inside the hooks, through ``harness.tfcompat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.markers import hookspec

if TYPE_CHECKING:
    import click
    import tensorflow as tf

    from harness.case import Case
    from harness.context import ModelSpec, RunContext
    from harness.registry import (
        CaseFormatRegistry,
        DeviceRegistry,
        LogParserRegistry,
        ModelRegistry,
        ReportWriterRegistry,
    )


# --- model hooks -------------------------------------------------------------------------


@hookspec(firstresult=True)
def build_dataset(case: Case, split: str, ctx: RunContext) -> tf.data.Dataset | None:
    """Build the input pipeline of ``case`` for ``split``.

    :param case: the validated, frozen case (``case.params`` holds the model's merged params,
        ``case.data`` the source and paths).
    :param split: ``"train"`` or ``"eval"``.
    :param ctx: run facts; batch with ``ctx.pipeline_batch_size`` and call ``ctx.shard`` on the
        file or example stream before batching (for ``"eval"`` the context has one input
        pipeline, so ``ctx.shard`` is a no-op: each process evaluates the whole split).
    :return: a ``tf.data.Dataset`` of ``(features, labels)`` batches. Train batches must all
        be full (``drop_remainder=True``; the runner refuses batches whose static size is not
        ``ctx.pipeline_batch_size``: a short batch would be counted as a full one); eval
        batches keep the remainder. A finite dataset is one epoch (the runner repeats it and
        derives steps per epoch from it); an infinite one (synthetic data) is used as is.
        None when ``case.model`` is not this plugin's. First non-None result wins.
    """


@hookspec(firstresult=True)
def build_model(case: Case, ctx: RunContext) -> ModelSpec | None:
    """Build the model, its per-example loss, the optimizer (with its learning-rate schedule)
    and metrics. Called inside the distribution strategy's scope and after the precision
    policy is set, so layers pick up the compute dtype.

    :param case: the validated case.
    :param ctx: run facts (``ctx.train_steps`` and ``ctx.steps_per_epoch`` size LR schedules).
    :return: a :class:`harness.context.ModelSpec` whose ``loss(labels, outputs)`` returns one
        loss per example, shape ``[batch]`` (checked when the step is traced: a scalar is
        refused), or None when ``case.model`` is not this plugin's. First non-None result wins.
    """


@hookspec
def configure_npu(case: Case, options: dict[str, Any]) -> None:
    """Amend the NPU / precision options before the device backend applies them.

    Called for every run on every device type (the options also steer mixed precision on GPU
    and CPU). ``options`` starts as the case's ``npu:`` section plus ``precision``; change it in
    place (``options.setdefault("precision_mode", "allow_mix_precision")``,
    ``options["loss_scale"] = 1024``, ``iterations_per_loop``, ``hcom_parallel``, ...).
    A model plugin only touches options for its own ``case.model``: one that changes the
    options of another plugin's model is refused (unless it declared ``registry.extend``).
    A task's ``configure_npu(options)`` answers this for its model. Return nothing.
    """


@hookspec(firstresult=True)
def evaluate(case: Case, model: Any, dataset: tf.data.Dataset, ctx: RunContext) -> dict | None:
    """Evaluate ``model`` on the eval ``dataset``.

    :param model: the trained Keras model (``ctx.model_spec`` holds the whole ModelSpec).
    :param dataset: what ``build_dataset(case, "eval", ctx)`` returned (the whole split),
        cut to ``eval.steps`` batches when the case sets it.
    :param ctx: the eval context (one input pipeline, see the eval rule above).
    :return: metric name -> float over the whole dataset (e.g. ``{"top1": 0.76, "top5":
        0.93}``); these go to the report's ``accuracy`` and are checked against
        ``eval.target`` (a target metric missing from the first evaluation fails the run).
        None when the case is not this plugin's. A builtin fallback evaluates
        ``ModelSpec.metrics``. First non-None result wins.
    """


@hookspec
def validate_case(case: Case) -> None:
    """Check what only the model plugin can check before a run starts: its data files
    (rows, labels, answers), files named in ``case.params``, params that depend on each other.

    Called once per case by ``bench run`` in the launching process, after the device check and
    before the report folder exists, so an error here is bad input: raise
    :class:`harness.errors.BenchError` with a one-line message naming the file and line or key
    (``data/train.tsv:17: unknown label 'maybe'``); ``bench`` exits 2 and writes nothing.
    A model plugin only checks cases whose ``case.model`` is its own. Return nothing.
    """


@hookspec(firstresult=True)
def log_interval(case: Case, record: dict[str, Any], ctx: RunContext) -> str | None:
    """Format the plain-text training log line printed every ``train.log_every`` steps.

    :param case: the running case (answer only for your own ``case.model``).
    :param record: ``step``, ``epoch`` (float or None), ``samples_per_sec`` (global, this
        interval), ``loss``, ``lr`` (or None), ``devices``.
    :param ctx: the run's context (``ctx.model_spec`` holds what build_model returned).
    :return: the line, or None to leave it to another plugin (a builtin fallback answers
        last). First non-None result wins.
    """


# --- harness hooks -----------------------------------------------------------------------


@hookspec
def register_models(registry: ModelRegistry) -> None:
    """Declare models: ``registry.add(name, task=TaskClass, description=..., params={defaults},
    sources=("synthetic", ...), pathless_sources=(), version=None)``. Case ``params`` are
    checked against the defaults (unknown keys and wrong types are errors) and merged over
    them; ``data.source`` defaults to the first of ``sources``, and every source but
    ``synthetic`` and the ``pathless_sources`` needs a ``data.path``. ``registry.extend(name)``
    declares that this plugin's plain model hooks also answer for another plugin's model."""


@hookspec
def register_devices(registry: DeviceRegistry) -> None:
    """Declare device backends: ``registry.add(BackendClass)``; the class has a ``name``
    (``cpu``, ``gpu``, ``npu``) and implements :class:`harness.devices.base.DeviceBackend`."""


@hookspec
def register_case_formats(registry: CaseFormatRegistry) -> None:
    """Declare case-file readers: ``registry.add(name, reader)`` where
    ``reader.claims(path, text) -> bool`` and ``reader.read(path, text) -> list[(where, dict)]``
    returns one raw case mapping per case with a location prefix for error messages."""


@hookspec
def register_report_writers(registry: ReportWriterRegistry) -> None:
    """Declare report renderers: ``registry.add(filename, render)`` where
    ``render(report_dict) -> str`` produces e.g. ``report.md``."""


@hookspec
def register_log_parsers(registry: LogParserRegistry) -> None:
    """Declare readers of a model's legacy training logs for ``bench import-log --model``:
    ``registry.add(model, parse)`` where ``parse(paths) -> harness.ParsedLog`` returns the
    logged throughput intervals (end step, steps, rate), the loss curve and the evaluations
    (use ``harness.read_log_lines(paths)`` to read the files: unreadable ones are bad input)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add ``bench`` subcommands, e.g. ``bench data ...``.

    :param cli: the ``bench`` click group; call ``cli.add_command(command)``. Keep the module
        importable without TensorFlow: ``bench --help`` lists these commands.
    """


@hookspec
def environment(env: dict[str, Any]) -> None:
    """Add facts to the environment fingerprint in place (``env["cann_version"] = ...``).

    :param env: the fingerprint so far (python, tensorflow, keras, device, host, cpu, git...).
    """


@hookspec
def run_event_sink(case: Case, folder: str) -> Any | None:
    """Return an object that receives the training events of one run of ``case``, or None.

    Called once per case run, after its report folder exists; the builtin MLLOG
    (``events.mllog``) and TensorBoard sinks answer here. Every plugin may return a sink. The
    runner calls these methods when the sink has them (each is optional), once per device
    count in this order, all outside the measured window:

    - ``run_start(case, ctx, total_steps, init_seconds)``: the model and data are built and
      training (warmup first) starts; ``ctx`` is the :class:`harness.context.RunContext`,
      ``init_seconds`` how long building took. For a count run as worker processes the sink
      lives in the launching process and receives rank 0's events as they arrive: ``ctx``
      then holds the plain fields only (``strategy`` and ``model_spec`` are None).
    - ``interval(record, interval)``: every ``train.log_every`` steps; ``record`` is what
      ``log_interval`` receives, ``interval`` the measured
      ``{step, steps, samples, seconds, samples_per_sec}``.
    - ``evaluate(step, metrics, seconds)``: after each evaluation (``seconds`` it took).
    - ``run_stop(result)``: always, also after a failure (``result["status"]``, ``["error"]``).

    Then ``close(status)`` once with the report's status, also when the run failed before
    any ``run_start``. A sink that raises is reported in ``train.log`` and dropped; the run
    goes on.

    :param case: the validated case about to run.
    :param folder: the run's report folder (write files below it).
    :return: a sink object, or None.
    """


@hookspec
def report_written(report: dict[str, Any], path: str) -> None:
    """Called after a run's report folder is complete (report.json and every renderer's file).

    :param report: the report as written to report.json.
    :param path: the run folder.
    """

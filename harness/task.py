"""The model task (TF Model Garden's ``Task``): one model's recipe, one instance per case run.

A model plugin registers its task with ``registry.add(name, task=MyTask, ...)``; the harness
then asks that task, and only that task, for the case's datasets, model, metrics, log line
and device options, so no other plugin can answer for the model by accident. State a run
needs later (a loss tracker for the log line, a counted dataset size) lives on ``self``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any

from harness.errors import BenchError

if TYPE_CHECKING:
    import tensorflow as tf

    from harness.case import Case
    from harness.context import ModelSpec, RunContext


class Task:
    """Subclass it and implement :meth:`build_dataset` and :meth:`build_model`; the other
    methods are optional (their defaults let the harness's builtins answer).

    The harness creates one instance per case run in each process (the launching process,
    and each worker process of a ``launcher: process`` count), with the validated case, and
    calls, in order: :meth:`validate` and :meth:`configure_npu` before anything is written,
    then for each device count :meth:`build_dataset` (``"train"``), :meth:`build_model`,
    :meth:`log_line` every ``train.log_every`` steps, and for each evaluation
    :meth:`build_dataset` (``"eval"``) and :meth:`evaluate`.
    """

    def __init__(self, case: Case) -> None:
        self.case = case

    def validate(self) -> None:
        """Check what only the model knows (its data files, params that depend on each
        other) before a run starts; raise :class:`harness.BenchError` with a line naming the
        file and key. Called before the report folder exists: the error is bad input."""

    def configure_npu(self, options: dict[str, Any]) -> None:
        """Amend the device options in place (``options.setdefault("precision_mode",
        ...)``, ``loss_scale``, ``iterations_per_loop``...); they also steer mixed precision
        on GPU and CPU. See the ``configure_npu`` hook."""

    def build_dataset(self, split: str, ctx: RunContext) -> tf.data.Dataset:
        """The input pipeline for ``split`` (``"train"`` or ``"eval"``): ``(features,
        labels)`` batches of ``ctx.pipeline_batch_size``.

        Train: every batch full (``drop_remainder=True``: the runner counts each step as a
        full batch and refuses a pipeline whose batches may be shorter); call ``ctx.shard``
        on the files or examples before batching. A finite dataset is one epoch.
        Eval: the whole split, last batch short if need be; ``ctx.shard`` is then a no-op
        (each process evaluates the whole split, whatever the launcher).
        """
        raise NotImplementedError

    def build_model(self, ctx: RunContext) -> ModelSpec:
        """The model, its per-example loss (shape ``[batch]``), the optimizer and metrics,
        built inside the strategy's scope with the precision policy set."""
        raise NotImplementedError

    def evaluate(self, model: Any, dataset: tf.data.Dataset, ctx: RunContext) -> dict | None:
        """Metric name -> float over the whole eval ``dataset``; None lets the builtin
        evaluate ``ModelSpec.metrics``."""
        return None

    def log_line(self, record: dict[str, Any], ctx: RunContext) -> str | None:
        """The training log line of an interval (``record`` as the ``log_interval`` hook
        gets it); None lets the builtin line be printed."""
        return None


# The methods the harness calls, and which a task must define.
TASK_METHODS = ("validate", "configure_npu", "build_dataset", "build_model", "evaluate",
                "log_line")
REQUIRED_METHODS = ("build_dataset", "build_model")


def check_task_class(task: Any, model: str, plugin: str) -> None:
    """Refuse, in one line naming the plugin, a task that is not a :class:`Task` subclass,
    lacks a required method, misspells one, or changes a method's arguments."""
    where = f'plugin "{plugin}": model {model!r}: task'
    if not (inspect.isclass(task) and issubclass(task, Task)):
        raise BenchError(f"{where} {task!r} is not a subclass of harness.Task")
    name = f"{where} {task.__name__}"
    for attr in dir(task):
        if attr.startswith("_") or attr in TASK_METHODS or hasattr(Task, attr):
            continue
        close = difflib.get_close_matches(attr, TASK_METHODS, n=1, cutoff=0.8)
        if close and callable(getattr(task, attr)):
            raise BenchError(f"{name}: method {attr!r} is not a task method "
                             f"(did you mean {close[0]!r}?)")
    for method in REQUIRED_METHODS:
        if getattr(task, method) is getattr(Task, method):
            raise BenchError(f"{name}: does not define {method}()")
    for method in TASK_METHODS:
        mine, base = getattr(task, method), getattr(Task, method)
        if mine is base:
            continue
        wanted = [p for p in inspect.signature(base).parameters if p != "self"]
        try:
            inspect.signature(mine).bind(None, *wanted)
        except TypeError:
            have = ", ".join(inspect.signature(mine).parameters)
            raise BenchError(f"{name}: {method}({have}) cannot be called as "
                             f"{method}(self, {', '.join(wanted)})") from None

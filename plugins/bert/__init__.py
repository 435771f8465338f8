"""BERT / NEZHA pretraining (masked LM + next sentence) as a zoobench model plugin, and its
downstream finetuning (``params.task``: classifier, ner, reading; see ``downstream``).

The task and the hooks only; the work lives beside them: ``tokenizer`` (WordPiece),
``pretraining_data`` (create_pretraining_data), ``commands`` (``bench data vocab|pretraining``),
``inputs`` (tf.data), ``config`` and ``modeling`` (layers), ``recipe`` (optimizer, schedule,
loss, metrics), ``checkpoint`` (Google checkpoints). No TensorFlow is imported at module level.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from harness import BenchError, ModelSpec, Task, hookimpl

if TYPE_CHECKING:
    from harness import Case, RunContext

__version__ = "0.1.0"
MODEL = "bert"
log = logging.getLogger("zoobench.bert")

# The seed's defaults (Ascend ModelZoo BERT-base README): lr 1e-5 with polynomial decay,
# 10000 warmup steps, weight decay 0.01, epsilon 1e-4, seq 128 with 20 masked tokens.
PARAMS = {
    "bert_config": "configs/bert_base_config.json",
    "max_seq_length": 128,
    "max_predictions_per_seq": 20,
    "learning_rate": 1e-5,
    "warmup_steps": 10000,
    "num_train_steps": 0,          # decay horizon; 0 = the run's train steps
    "weight_decay": 0.01,
    "adam_epsilon": 1e-4,
    "clip_norm": 1.0,              # global-norm clipping (Google/NVIDIA create_optimizer); 0 = off
    "init_checkpoint": "",         # a Google-format BERT checkpoint to start from
}

def _params(case: Case) -> dict[str, Any]:
    p = dict(case.params)

    def fail(key: str, message: str) -> BenchError:
        return BenchError(f"{case.source}: params.{key}: {message}")

    for key in ("max_seq_length", "max_predictions_per_seq"):
        if p[key] < 1:
            raise fail(key, f"must be >= 1, got {p[key]}")
    if p["max_predictions_per_seq"] >= p["max_seq_length"]:
        raise fail("max_predictions_per_seq", f"must be below max_seq_length "
                                              f"({p['max_seq_length']})")
    for key in ("warmup_steps", "num_train_steps"):
        if p[key] < 0:
            raise fail(key, f"must be >= 0, got {p[key]}")
    for key in ("learning_rate", "adam_epsilon"):
        if not p[key] > 0:
            raise fail(key, f"must be > 0, got {p[key]}")
    for key in ("weight_decay", "clip_norm"):
        if p[key] < 0:
            raise fail(key, f"must be >= 0, got {p[key]}")
    return p


def _config(case: Case) -> Any:
    from plugins.bert.config import load_config

    p = _params(case)
    config = load_config(p["bert_config"], f"{case.source}: params.bert_config")
    if not config.use_relative_position and p["max_seq_length"] > config.max_position_embeddings:
        raise BenchError(f"{case.source}: params.max_seq_length: {p['max_seq_length']} exceeds "
                         f"max_position_embeddings {config.max_position_embeddings} of "
                         f"{p['bert_config']}")
    return config


class BertTask(Task):
    """One run of a bert case (pretraining or ``params.task`` finetuning): the loss trackers
    of the last build, for the ModelZoo log line."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        self._trackers: Any = None

    def validate(self) -> None:
        from plugins.bert import downstream

        downstream.task_of(self.case)  # params.task against data.source, for pretraining too
        if downstream.is_downstream(self.case):
            downstream.validate(self.case)

    def configure_npu(self, options: dict[str, Any]) -> None:
        if self.case.precision == "mixed":
            # The seed: NPURunConfig(precision_mode='allow_mix_precision') + dynamic loss scale.
            options.setdefault("precision_mode", "allow_mix_precision")
            options.setdefault("loss_scale", "dynamic")
        options.setdefault("hcom_parallel", True)
        # TF 1.15 configs' loop = train.steps_per_loop (npu default: one loop per log line, as
        # the seed's Estimator logs once per loop)
        train = self.case.train
        options.setdefault("iterations_per_loop", train.steps_per_loop or train.log_every)

    def build_dataset(self, split: str, ctx: RunContext) -> Any:
        from plugins.bert import downstream, inputs

        case = self.case
        if downstream.is_downstream(case):
            return downstream.build_dataset(case, split, ctx)
        p = _params(case)
        seq, predictions = p["max_seq_length"], p["max_predictions_per_seq"]
        training = split == "train"
        if case.data.synthetic:
            return inputs.synthetic_dataset(_config(case).vocab_size, ctx, seq, predictions,
                                            training, case.seed)
        key = "data.path" if training or not case.data.eval_path else "data.eval_path"
        spec = case.data.path if key == "data.path" else case.data.eval_path
        files = inputs.list_files(spec, f"{case.source}: {key}")
        return inputs.tfrecord_dataset(files, ctx, seq, predictions, training, case.seed)

    def build_model(self, ctx: RunContext) -> ModelSpec:
        from plugins.bert import downstream, modeling, recipe
        from plugins.bert.config import resolve_path

        case = self.case
        self._trackers = None
        if downstream.is_downstream(case):
            return downstream.build_model(case, ctx)
        p = _params(case)
        config = _config(case)
        seq, predictions = p["max_seq_length"], p["max_predictions_per_seq"]
        model = modeling.build_model(config)
        model(modeling.dummy_features(1, seq, predictions), training=False)  # create the weights
        if p["init_checkpoint"]:
            from plugins.bert.checkpoint import load_google_checkpoint

            done = load_google_checkpoint(model, resolve_path(p["init_checkpoint"]), ctx.assign)
            log.info("init_checkpoint %s: %d variables loaded, %d not in the checkpoint",
                     p["init_checkpoint"], len(done["loaded"]), len(done["missing"]))
        schedule = recipe.learning_rate_schedule(p["learning_rate"], p["warmup_steps"],
                                                 p["num_train_steps"] or ctx.train_steps)
        optimizer = recipe.adam_weight_decay(schedule, p["weight_decay"], p["adam_epsilon"],
                                             p["clip_norm"] or None)
        self._trackers = recipe.LossTrackers()
        return ModelSpec(model=model, loss=recipe.pretraining_loss(self._trackers),
                         optimizer=optimizer,
                         flops_per_sample=modeling.forward_flops(config, seq, predictions),
                         extra={"bert_config": config.to_dict()})

    def evaluate(self, model: Any, dataset: Any, ctx: RunContext) -> dict:
        from plugins.bert import downstream
        from plugins.bert.recipe import evaluate as run_eval

        if downstream.is_downstream(self.case):
            return downstream.evaluate(self.case, model, dataset, ctx)
        return run_eval(model, dataset, ctx)

    def log_line(self, record: dict[str, Any], ctx: RunContext) -> str | None:
        """The ModelZoo BERT line: ``global_step = N, masked_lm_loss = .., next_sentence_loss =
        .., total_loss = ..`` plus throughput (sentences/s) and the loss scale; the losses are
        means over the steps since the previous line (pretraining; finetuning: the builtin
        line)."""
        if self._trackers is None:
            return None
        mlm, nsp = self._trackers.read_and_reset(ctx)
        spec = ctx.model_spec
        scale = ctx.loss_scale  # the graph engine's (the adapter's loss-scale manager)
        if scale is None and spec is not None:
            scale = getattr(spec.optimizer, "loss_scale", None)
        scale = ctx.numpy(scale) if scale is not None else None
        lr = f", learning_rate = {record['lr']:.4e}" if record.get("lr") is not None else ""
        return (f"global_step = {record['step']}, masked_lm_loss = {mlm:.7g}, "
                f"next_sentence_loss = {nsp:.7g}, total_loss = {mlm + nsp:.7g}, "
                f"throughput = {record['samples_per_sec']:.1f} sentences/s, "
                f"loss_scale = {float(scale) if scale is not None else 1.0:g}{lr}")


@hookimpl
def register_models(registry: Any) -> None:
    from plugins.bert import downstream

    registry.add(MODEL, task=BertTask,
                 description="BERT / NEZHA pretraining (masked LM + next sentence) "
                             "and finetuning (params.task: classifier, ner, reading)",
                 params={**PARAMS, **downstream.PARAMS},
                 sources=("synthetic", "tfrecord", *downstream.DOWNSTREAM_SOURCES),
                 version=__version__)


@hookimpl
def register_commands(cli: Any) -> None:
    from plugins.bert.commands import add_commands

    add_commands(cli)


@hookimpl
def register_log_parsers(registry: Any) -> None:
    registry.add(MODEL, _parse_log)


def _parse_log(paths: list[str]) -> Any:
    """``bench import-log --model {MODEL}`` (imported only when used)."""
    from plugins.bert.logs import parse_bert

    return parse_bert(paths)

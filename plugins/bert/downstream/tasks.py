"""``params.task``: classifier, ner and reading as the bert model's downstream tasks.

What the bert plugin's hooks call for a downstream case: ``validate`` (before the run: params,
vocab, config, checkpoint, every data row), ``build_dataset``, ``build_model`` and
``evaluate``. Finetuning follows the seed's scripts (Google's run_classifier / run_squad and the
seed's run_ner): AdamW with weight decay 0.01, epsilon 1e-6, clipping at global norm 1.0,
linear warmup over ``warmup_proportion`` of the steps then linear decay to 0.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import TYPE_CHECKING, Any

from harness import BenchError
from plugins.bert.downstream import processors
from plugins.bert.downstream.heads import CLASSIFIER, NER, READING

if TYPE_CHECKING:
    from harness import Case, ModelSpec, RunContext

log = logging.getLogger("zoobench.bert")

PRETRAINING = "pretraining"
TASKS = (PRETRAINING, CLASSIFIER, NER, READING)
SOURCES = {PRETRAINING: ("synthetic", "tfrecord"),
           CLASSIFIER: ("xnli", "lcqmc", "chnsenticorp", "tsv"),
           NER: ("conll",),
           READING: ("cmrc", "squad")}
DOWNSTREAM_SOURCES = tuple(s for task in (CLASSIFIER, NER, READING) for s in SOURCES[task])

# Params the downstream tasks add to the bert model (they share bert_config, max_seq_length,
# learning_rate, weight_decay, adam_epsilon, clip_norm, num_train_steps, init_checkpoint).
PARAMS = {
    "task": PRETRAINING,           # pretraining | classifier | ner | reading
    "vocab_file": "",              # the vocab.txt of the checkpoint (downstream tasks)
    "do_lower_case": True,         # Chinese BERT: either; the seed's CMRC run sets false
    "labels": [],                  # label list; [] = the format's own, else the train file's
    "warmup_proportion": 0.1,      # downstream warmup: this share of the steps (Google's 0.1)
    "xnli_language": "zh",         # the rows of xnli.dev.tsv / xnli.test.tsv to read
    "tsv_text_a": 0,               # data.source tsv: 0-based columns; tsv_text_b -1 = none
    "tsv_text_b": 1,
    "tsv_label": 2,
    "tsv_header": False,           # data.source tsv: skip the first line
    "doc_stride": 128,             # reading: run_squad's sliding window step and limits
    "max_query_length": 64,
    "max_answer_length": 30,
    "n_best_size": 20,
    "feature_cache": "",           # folder for the feature TFRecords; "" = <cache>/bert_features
}


def task_of(case: Case) -> str:
    """``params.task``, checked against ``data.source``."""
    task = case.params.get("task", PRETRAINING)
    if task not in TASKS:
        raise BenchError(f"{case.source}: params.task: unknown task {task!r}; expected one of "
                         f"{', '.join(TASKS)}")
    if case.data.source not in SOURCES[task]:
        owner = next((t for t, sources in SOURCES.items() if case.data.source in sources), None)
        hint = f" (a {owner} source: set params.task: {owner})" if owner else ""
        raise BenchError(f"{case.source}: data.source: task {task} reads "
                         f"{', '.join(SOURCES[task])}; got {case.data.source!r}{hint}")
    return task


def is_downstream(case: Case) -> bool:
    return case.params.get("task", PRETRAINING) != PRETRAINING


# --- inputs ------------------------------------------------------------------------------


def _path(case: Case, training: bool) -> tuple[str, str]:
    """(resolved data file, its case key) of a split; eval falls back to data.path."""
    from plugins.bert.config import resolve_path

    key = "data.path" if training or not case.data.eval_path else "data.eval_path"
    return resolve_path(case.data.path if key == "data.path" else case.data.eval_path), key


def _columns(case: Case) -> processors.TsvColumns:
    p = case.params
    return processors.TsvColumns(p["tsv_text_a"], p["tsv_text_b"], p["tsv_label"],
                                 p["tsv_header"])


@functools.lru_cache(maxsize=8)
def _read_cached(source: str, stamp: tuple, columns: processors.TsvColumns, language: str,
                 training: bool) -> tuple:
    path = stamp[0]
    if source == "conll":
        return tuple(processors.read_conll(path))
    if source in SOURCES[READING]:
        return tuple(processors.read_squad(path, training))
    return tuple(processors.read_classification(source, path, columns, language))


def examples(case: Case, training: bool) -> tuple:
    """The parsed examples of a split (cached per file content and reader settings)."""
    path, key = _path(case, training)
    if not os.path.isfile(path):
        raise BenchError(f"{case.source}: {key}: no such file {path!r}")
    stamp = (path, os.path.getsize(path), os.stat(path).st_mtime_ns)
    return _read_cached(case.data.source, stamp, _columns(case), case.params["xnli_language"],
                        training)


def labels(case: Case) -> tuple[str, ...]:
    """The label list: ``params.labels``, else the format's fixed one, else the train file's."""
    given = tuple(str(label) for label in case.params["labels"])
    if given:
        if len(set(given)) != len(given):
            raise BenchError(f"{case.source}: params.labels: a label is listed twice")
        return given
    return processors.default_labels(case.data.source) or processors.labels_of(
        list(examples(case, training=True)))


@functools.lru_cache(maxsize=4)
def _tokenizer(vocab_file: str, do_lower_case: bool, stamp: tuple) -> Any:
    from plugins.bert.tokenizer import WordPieceTokenizer

    return WordPieceTokenizer(vocab_file, do_lower_case)


def tokenizer(case: Case) -> Any:
    from plugins.bert.config import resolve_path

    vocab = case.params["vocab_file"]
    if not vocab:
        raise BenchError(f"{case.source}: params.vocab_file: downstream tasks need the "
                         f"checkpoint's vocab.txt")
    path = resolve_path(vocab)
    if not os.path.isfile(path):
        raise BenchError(f"{vocab}: no such vocabulary file (params.vocab_file)")
    info = os.stat(path)
    return _tokenizer(path, case.params["do_lower_case"], (info.st_size, info.st_mtime_ns))


def _cache_folder(case: Case) -> str:
    from harness import cache_dir

    return case.params["feature_cache"] or os.path.join(cache_dir(), "bert_features")


def records(case: Case, training: bool) -> tuple[str, dict[str, Any]]:
    """(TFRecord file, its meta) of a split's features, written on first use."""
    from plugins.bert.downstream import features
    from plugins.bert.downstream import records as rec

    task = task_of(case)
    p = case.params
    path, _ = _path(case, training)
    tok = tokenizer(case)
    parts = {"task": task, "split": "train" if training else "eval",
             "source": case.data.source, "data": rec.stamp(path),
             "vocab": rec.stamp(tok.vocab_file), "lower": p["do_lower_case"],
             "seq": p["max_seq_length"]}
    if task == READING:
        parts.update(stride=p["doc_stride"], query=p["max_query_length"])
    else:
        parts.update(labels=list(labels(case)), columns=dataclasses.asdict(_columns(case)),
                     language=p["xnli_language"])
    target = rec.record_path(_cache_folder(case), parts)

    def make() -> Any:
        items = list(examples(case, training))
        seq = p["max_seq_length"]
        if task == CLASSIFIER:
            return features.classification_features(items, labels(case), tok, seq)
        if task == NER:
            return features.ner_features(items, labels(case), tok, seq)
        built = features.reading_features(items, tok, seq, p["max_query_length"],
                                          p["doc_stride"], training)
        built.meta["style"] = "cmrc" if case.data.source == "cmrc" else "squad"
        return built

    return target, rec.ensure(target, make)


# --- hooks -------------------------------------------------------------------------------


def validate(case: Case) -> None:
    """Everything a downstream run reads, checked before it starts."""
    from plugins.bert.config import load_config

    task = task_of(case)
    p = case.params
    where = f"{case.source}: params"
    for key in ("doc_stride", "max_query_length", "max_answer_length", "n_best_size",
                "max_seq_length"):
        if p[key] < 1:
            raise BenchError(f"{where}.{key}: must be >= 1, got {p[key]}")
    if not 0.0 <= p["warmup_proportion"] < 1.0:
        raise BenchError(f"{where}.warmup_proportion: must be in [0, 1), got "
                         f"{p['warmup_proportion']}")
    for key in ("learning_rate", "adam_epsilon"):
        if not p[key] > 0:
            raise BenchError(f"{where}.{key}: must be > 0, got {p[key]}")
    for key in ("weight_decay", "clip_norm", "num_train_steps"):
        if p[key] < 0:
            raise BenchError(f"{where}.{key}: must be >= 0, got {p[key]}")
    if task == READING and p["max_query_length"] + 3 >= p["max_seq_length"]:
        raise BenchError(f"{where}.max_query_length: {p['max_query_length']} leaves no room "
                         f"for the passage in max_seq_length {p['max_seq_length']}")
    if task == CLASSIFIER and case.data.source == "tsv":
        columns = [p["tsv_text_a"], p["tsv_label"]] + ([p["tsv_text_b"]]
                                                       if p["tsv_text_b"] >= 0 else [])
        if min(columns) < 0 or len(set(columns)) != len(columns):
            raise BenchError(f"{where}.tsv_text_a/tsv_text_b/tsv_label: need distinct "
                             f"columns >= 0, got {columns}")
    config = load_config(p["bert_config"], f"{where}.bert_config")
    if not config.use_relative_position and p["max_seq_length"] > config.max_position_embeddings:
        raise BenchError(f"{where}.max_seq_length: {p['max_seq_length']} exceeds "
                         f"max_position_embeddings {config.max_position_embeddings}")
    tok = tokenizer(case)
    if len(tok.vocab) > config.vocab_size:
        raise BenchError(f"{p['vocab_file']}: {len(tok.vocab)} tokens but bert_config "
                         f"vocab_size is {config.vocab_size}")
    if p["init_checkpoint"]:
        from plugins.bert.checkpoint import find_checkpoint
        from plugins.bert.config import resolve_path

        find_checkpoint(resolve_path(p["init_checkpoint"]))
    train = examples(case, training=True)
    global_batch = case.batch_size * max(case.devices)
    if len(train) < global_batch:
        raise BenchError(f"{case.source}: data.path: {len(train)} examples make no full "
                         f"batch of {global_batch} (batch_size x devices)")
    if task != READING:
        label_list = labels(case)
        processors.check_labels(list(train), label_list)
    if case.eval.at_end or case.eval.every_steps:
        held_out = examples(case, training=False)
        if task != READING:
            processors.check_labels(list(held_out), label_list)


def build_dataset(case: Case, split: str, ctx: RunContext) -> Any:
    from plugins.bert.downstream import records as rec

    training = split == "train"
    path, meta = records(case, training)
    return rec.dataset(path, meta, ctx, training, case.seed)


def build_model(case: Case, ctx: RunContext) -> ModelSpec:
    from harness import ModelSpec
    from plugins.bert import recipe
    from plugins.bert.config import load_config, resolve_path
    from plugins.bert.downstream import heads

    task = task_of(case)
    p = case.params
    config = load_config(p["bert_config"], f"{case.source}: params.bert_config")
    label_list = labels(case) if task != READING else ()
    seq = p["max_seq_length"]
    model, bert = heads.build(config, task, len(label_list), seq)
    if p["init_checkpoint"]:
        from plugins.bert.checkpoint import load_google_checkpoint

        done = load_google_checkpoint(bert, resolve_path(p["init_checkpoint"]), ctx.assign)
        encoder = [name for name in done["loaded"] if name.startswith("bert/")]
        log.info("init_checkpoint %s: %d encoder variables loaded", p["init_checkpoint"],
                 len(encoder))
    total = p["num_train_steps"] or ctx.train_steps
    schedule = recipe.learning_rate_schedule(p["learning_rate"],
                                             int(total * p["warmup_proportion"]), total)
    optimizer = recipe.adam_weight_decay(schedule, p["weight_decay"], p["adam_epsilon"],
                                         p["clip_norm"] or None)
    return ModelSpec(model=model, loss=functools.partial(heads.per_example_loss, task),
                     optimizer=optimizer,
                     flops_per_sample=heads.flops(config, task, len(label_list), seq),
                     extra={"bert_config": config.to_dict(), "task": task,
                            "labels": list(label_list)})


def evaluate(case: Case, model: Any, dataset: Any, ctx: RunContext) -> dict[str, float]:
    from plugins.bert.downstream import evaluation

    task = task_of(case)
    if task == READING:
        _, meta = records(case, training=False)
        return evaluation.reading(model, dataset, ctx, meta, case.params["n_best_size"],
                                  case.params["max_answer_length"])
    if task == NER:
        return evaluation.ner(model, dataset, ctx, labels(case))
    return evaluation.classification(model, dataset, ctx)

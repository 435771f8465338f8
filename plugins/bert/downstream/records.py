"""Downstream features as TFRecord files (the seed's train.tf_record / eval.tf_record), cached.

The features of a data file are written once, as ``tf.train.Example`` records with int64
lists (Google's file_based_convert_examples_to_features), beside a JSON file with their count,
shapes and what evaluation needs; both are named by a hash of everything they depend on (the
data and vocab files' size and mtime, the task params), so a changed input makes new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness import RunContext
    from plugins.bert.downstream.features import Features

VERSION = 1  # bump when the feature layout changes
INPUTS = ("input_ids", "input_mask", "segment_ids")
SHUFFLE_BUFFER = 10000  # Google's 100 barely mixes files sorted by label (ChnSentiCorp)


def stamp(path: str) -> list:
    """What identifies a file's content cheaply: real path, size, mtime."""
    info = os.stat(path)
    return [os.path.realpath(path), info.st_size, info.st_mtime_ns]


def record_path(folder: str, parts: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps({"version": VERSION, **parts}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]
    return os.path.join(folder, f"{parts.get('task', 'features')}-{parts.get('split', '')}-"
                                f"{digest}.tfrecord")


def load_meta(path: str) -> dict[str, Any] | None:
    """The JSON beside a complete record file, or None when there is none yet."""
    if not os.path.exists(path):
        return None
    try:
        with open(path + ".json", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def ensure(path: str, make: Callable[[], Features]) -> dict[str, Any]:
    """The meta of ``path``, writing the records first (from ``make()``) when missing."""
    meta = load_meta(path)
    if meta is None:
        write(path, make())
        meta = load_meta(path)
    return meta


def write(path: str, features: Features) -> None:
    """Records, then the JSON (its presence marks the records complete); both atomically, so
    concurrent workers writing the same cache entry are harmless."""
    from harness.tfcompat import tf

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    names = list(features.arrays)
    tmp = f"{path}.{os.getpid()}.tmp"
    with tf.io.TFRecordWriter(tmp) as writer:
        for i in range(features.count):
            feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(
                value=features.arrays[name][i].tolist())) for name in names}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    os.replace(tmp, path)
    meta = {"count": features.count,
            "shapes": {name: int(features.arrays[name].shape[1]) for name in names},
            **features.meta}
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, ensure_ascii=False)
    os.replace(tmp, path + ".json")


def dataset(path: str, meta: dict[str, Any], ctx: RunContext, training: bool,
            seed: int) -> Any:
    """``(features, labels)`` batches: the three BERT inputs as features, the rest as labels
    (int32). Training: this pipeline's shard, shuffled each epoch, full batches only; eval:
    every record in file order. The cardinality is known, so ``train.epochs`` works."""
    from harness import tfcompat
    from harness.tfcompat import tf

    shapes = meta["shapes"]
    spec = {name: tf.io.FixedLenFeature([width], tf.int64) for name, width in shapes.items()}

    def parse(serialized: Any) -> tuple[dict, dict]:
        parsed = {k: tf.cast(v, tf.int32) for k, v in tf.io.parse_example(serialized,
                                                                           spec).items()}
        return ({k: parsed[k] for k in INPUTS},
                {k: v for k, v in parsed.items() if k not in INPUTS})

    count = meta["count"]
    records = tfcompat.with_cardinality(tf.data.TFRecordDataset(path), count)
    if training:
        # Equal shards, so every worker derives the same steps per epoch.
        pipelines = ctx.num_input_pipelines
        records = ctx.shard(records.take(count - count % pipelines))
        records = records.shuffle(min(count, SHUFFLE_BUFFER), seed=seed,
                                  reshuffle_each_iteration=True)
    batches = records.batch(ctx.pipeline_batch_size, drop_remainder=training)
    autotune = tfcompat.autotune()
    return batches.map(parse, num_parallel_calls=autotune).prefetch(autotune)

"""BERT pretraining input pipelines: Google's TFRecord features, or synthetic ones of the same shapes.

Each batch is ``(features, labels)``: features ``input_ids``, ``input_mask``, ``segment_ids``
``[batch, seq]`` and ``masked_lm_positions`` ``[batch, predictions]`` (int32); labels
``masked_lm_ids`` (int32) and ``masked_lm_weights`` (float32) ``[batch, predictions]`` and
``next_sentence_labels`` ``[batch]`` (int32; 1 = B is a random sentence).
"""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any

from harness import BenchError

if TYPE_CHECKING:
    from harness import RunContext

FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")
SHUFFLE_BUFFER = 100  # Google run_pretraining's input_fn
EVAL_SYNTHETIC_BATCHES = 4


def list_files(spec: str, where: str) -> list[str]:
    """Files of a comma-separated list of files, folders (every file inside) and globs."""
    files: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if os.path.isdir(part):
            files.extend(sorted(os.path.join(part, f) for f in os.listdir(part)
                                if not f.startswith(".") and os.path.isfile(os.path.join(part, f))))
        else:
            files.extend(sorted(glob.glob(part)))
    if not files:
        raise BenchError(f"{where}: no TFRecord files match {spec!r}")
    return files


def expected_lengths(seq: int, predictions: int) -> dict[str, tuple[int, str]]:
    return {"input_ids": (seq, "max_seq_length"), "input_mask": (seq, "max_seq_length"),
            "segment_ids": (seq, "max_seq_length"),
            "masked_lm_positions": (predictions, "max_predictions_per_seq"),
            "masked_lm_ids": (predictions, "max_predictions_per_seq"),
            "masked_lm_weights": (predictions, "max_predictions_per_seq"),
            "next_sentence_labels": (1, "")}


def check_first_record(path: str, seq: int, predictions: int) -> None:
    """Fail early, naming the file and feature, when records do not match the params."""
    from harness.tfcompat import tf

    try:
        raw = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise BenchError(f"{path}: not a TFRecord file ({exc.message.splitlines()[0]})") from None
    if raw is None:
        return
    try:
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError type differs by version
        raise BenchError(f"{path}: records are not tf.train.Example ({exc})") from None
    for name, (length, param) in expected_lengths(seq, predictions).items():
        if name not in feature:
            raise BenchError(f"{path}: feature {name} missing; not BERT pretraining data "
                             f"(bench data pretraining writes it)")
        values = feature[name]
        have = len(values.float_list.value) + len(values.int64_list.value)
        if have != length:
            raise BenchError(f"{path}: {name} holds {have} values but params.{param} is "
                             f"{length}")


def parse_batch(serialized: Any, seq: int, predictions: int) -> tuple[dict, dict]:
    from harness.tfcompat import tf

    spec = {name: tf.io.FixedLenFeature([length], tf.float32 if name == "masked_lm_weights"
                                        else tf.int64)
            for name, (length, _) in expected_lengths(seq, predictions).items()}
    example = tf.io.parse_example(serialized, spec)
    # int64 -> int32 as Google's _decode_record does (cheaper gathers, TPU/NPU friendly).
    ints = {k: tf.cast(v, tf.int32) for k, v in example.items() if v.dtype == tf.int64}
    features = {k: ints[k] for k in FEATURE_KEYS}
    labels = {"masked_lm_ids": ints["masked_lm_ids"],
              "masked_lm_weights": example["masked_lm_weights"],
              "next_sentence_labels": tf.reshape(ints["next_sentence_labels"], [-1])}
    return features, labels


def tfrecord_dataset(files: list[str], ctx: RunContext, seq: int, predictions: int,
                     training: bool, seed: int) -> Any:
    """Google's input_fn: files shuffled and interleaved, a 100-record shuffle buffer, an
    endless stream when training; one pass in order for eval."""
    from harness import tfcompat
    from harness.tfcompat import tf

    check_first_record(files[0], seq, predictions)
    autotune = tfcompat.autotune()
    if len(files) >= ctx.num_input_pipelines:
        names = ctx.shard(tf.data.Dataset.from_tensor_slices(files))
        if training:
            names = names.shuffle(len(files), seed=seed).repeat()
        records = names.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                                   num_parallel_calls=autotune,
                                   **(tfcompat.unordered() if training else {}))
    else:
        records = ctx.shard(tf.data.TFRecordDataset(files))
        if training:
            records = records.repeat()
    if training:
        records = records.shuffle(SHUFFLE_BUFFER, seed=seed)
    batches = records.batch(ctx.pipeline_batch_size, drop_remainder=training)
    return batches.map(lambda s: parse_batch(s, seq, predictions),
                       num_parallel_calls=autotune).prefetch(autotune)


def synthetic_batch(vocab_size: int, seq: int, predictions: int, batch: int, seed: int,
                    ) -> tuple[dict, dict]:
    """Random token ids with the real layout: two segments, distinct sorted masked positions
    (never [CLS] at 0), every prediction weighted."""
    import numpy as np

    if predictions >= seq:
        raise BenchError(f"params.max_predictions_per_seq: {predictions} must be below "
                         f"max_seq_length {seq}")
    rng = np.random.default_rng(seed)
    segment = np.array([0] * (seq // 2) + [1] * (seq - seq // 2), dtype=np.int32)
    positions = np.stack([np.sort(rng.choice(np.arange(1, seq), predictions, replace=False))
                          for _ in range(batch)]).astype(np.int32)
    features = {
        "input_ids": rng.integers(0, vocab_size, [batch, seq], dtype=np.int32),
        "input_mask": np.ones([batch, seq], dtype=np.int32),
        "segment_ids": np.tile(segment, [batch, 1]),
        "masked_lm_positions": positions,
    }
    labels = {
        "masked_lm_ids": rng.integers(0, vocab_size, [batch, predictions], dtype=np.int32),
        "masked_lm_weights": np.ones([batch, predictions], dtype=np.float32),
        "next_sentence_labels": rng.integers(0, 2, [batch], dtype=np.int32),
    }
    return features, labels


def synthetic_dataset(vocab_size: int, ctx: RunContext, seq: int, predictions: int,
                      training: bool, seed: int) -> Any:
    """One batch made on the host, repeated: endless for training, a few batches for eval."""
    from harness.tfcompat import tf

    batch = synthetic_batch(vocab_size, seq, predictions, ctx.pipeline_batch_size,
                            seed + ctx.input_pipeline_id + (0 if training else 7919))
    dataset = tf.data.Dataset.from_tensors(batch)
    return dataset.repeat() if training else dataset.repeat(EVAL_SYNTHETIC_BATCHES)

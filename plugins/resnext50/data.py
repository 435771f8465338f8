"""tf.data pipelines: ImageNet-format TFRecords (train / eval preprocessing) and synthetic data."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any

from harness import BenchError

if TYPE_CHECKING:
    from harness import Case, RunContext

# The seed's normalisation (parse_and_preprocess_image_record, RGB order).
MEAN_RGB = (121.0, 115.0, 100.0)
STD_RGB = (70.0, 68.0, 71.0)
# ImageNet-1k's train split: what an "epoch" of synthetic data means.
IMAGENET_TRAIN_EXAMPLES = 1281167
SPLIT_PATTERNS = {"train": "train-*-of-*", "eval": "validation-*-of-*"}


def split_files(case: Case, split: str) -> list[str]:
    """The TFRecord files of ``split`` (``train-*-of-*`` under data.path, ``validation-*-of-*``
    under data.eval_path or data.path), sorted; an error naming the key when there are none."""
    key = "data.eval_path" if split == "eval" and case.data.eval_path else "data.path"
    folder = case.data.eval_path if key == "data.eval_path" else case.data.path
    if not folder or not os.path.isdir(folder):
        raise BenchError(f"{case.source}: {key}: no such directory {folder!r}")
    # a conversion still running (or killed) has only .partial shards: never read them
    files = sorted(f for f in glob.glob(os.path.join(folder, SPLIT_PATTERNS[split]))
                   if not f.endswith(".partial"))
    if not files:
        raise BenchError(f"{case.source}: {key}: no {SPLIT_PATTERNS[split]} files in {folder!r}")
    return files


def count_records(files: list[str]) -> int:
    """Number of records in ``files``: one pass over the raw records, nothing decoded."""
    from harness.tfcompat import tf

    dataset = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8))
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def train_examples(case: Case) -> int:
    """Examples in one train epoch: ``params.train_examples``, else counted (tfrecord) or
    ImageNet-1k's 1281167 (synthetic, so epochs and warmup epochs mean what they do on
    ImageNet)."""
    given = int(case.params["train_examples"])
    if given:
        return given
    if case.data.synthetic:
        return IMAGENET_TRAIN_EXAMPLES
    return count_records(split_files(case, "train"))


def parse_record(record: Any) -> tuple[Any, Any]:
    """``image/encoded`` (JPEG bytes) and ``image/class/label`` of one ImageNet-format record."""
    from harness.tfcompat import tf

    features = tf.io.parse_single_example(record, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    return features["image/encoded"], tf.cast(features["image/class/label"], tf.int32)


def random_crop_window(encoded: Any, crop_area_min: float, seed: Any = None) -> Any:
    """A crop window ``[y, x, h, w]`` covering ``crop_area_min``..100 % of the image area,
    aspect ratio 3/4..4/3, at a random place (whole image when no such window is found)."""
    from harness.tfcompat import tf

    shape = tf.io.extract_jpeg_shape(encoded)
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=whole, min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(crop_area_min, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def normalize(image: Any, dtype: str) -> Any:
    """Clip to [0, 255], subtract the seed's mean and divide by its std, cast to ``dtype``."""
    from harness.tfcompat import tf

    image = tf.clip_by_value(image, 0.0, 255.0)
    image = (image - tf.constant(MEAN_RGB)) / tf.constant(STD_RGB)
    return tf.cast(image, dtype)


def preprocess_train(encoded: Any, size: int, crop_area_min: float, dtype: str) -> Any:
    """Decode only a random crop window (decode_and_crop_jpeg), resize to ``size`` x ``size``
    (bilinear), random left-right flip, normalise."""
    from harness.tfcompat import tf

    window = random_crop_window(encoded, crop_area_min)
    image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
    image = tf.image.resize(image, [size, size], method="bilinear")
    image = tf.image.random_flip_left_right(image)
    return normalize(image, dtype)


def preprocess_eval(encoded: Any, size: int, central_fraction: float, dtype: str) -> Any:
    """Decode, central crop (``central_fraction`` of each side), resize, normalise."""
    from harness.tfcompat import tf

    image = tf.io.decode_jpeg(encoded, channels=3)
    image = tf.image.central_crop(image, central_fraction)
    image = tf.image.resize(image, [size, size], method="bilinear")
    return normalize(image, dtype)


def tfrecord_dataset(case: Case, split: str, ctx: RunContext, examples: int | None) -> Any:
    """ImageNet TFRecords: files sharded per input pipeline, parallel interleave, shuffle,
    parallel decode + preprocess, batch, prefetch.

    Train returns exactly ``examples // global batch`` batches (one epoch, a known
    cardinality the runner repeats and counts epochs with), drawn from an endless stream of
    this pipeline's files, so uneven shards never end an epoch early. Eval is one ordered
    pass over all validation files, on every pipeline (accuracy of the whole split).
    """
    from harness import tfcompat
    from harness.tfcompat import tf

    p = case.params
    autotune = tfcompat.autotune()
    files = split_files(case, split)
    size, dtype = int(p["image_size"]), ctx.compute_dtype
    if split == "eval":
        central = float(p["eval_central_fraction"])
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8))
        ds = ds.map(parse_record, num_parallel_calls=autotune)
        ds = ds.map(lambda img, label: (preprocess_eval(img, size, central, dtype), label),
                    num_parallel_calls=autotune)
        return ds.batch(ctx.pipeline_batch_size).prefetch(autotune)

    names = tf.data.Dataset.from_tensor_slices(files)
    if len(files) >= ctx.num_input_pipelines:
        names = ctx.shard(names)
    names = names.shuffle(len(files), seed=ctx.seed, reshuffle_each_iteration=True).repeat()
    ds = names.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 16),
                          block_length=1, num_parallel_calls=autotune, **tfcompat.unordered())
    if len(files) < ctx.num_input_pipelines:
        ds = ctx.shard(ds)  # fewer files than pipelines: split the records instead
    ds = ds.shuffle(int(p["shuffle_buffer"]), seed=ctx.seed)
    area = float(p["crop_area_min"])
    ds = ds.map(parse_record, num_parallel_calls=autotune)
    ds = ds.map(lambda img, label: (preprocess_train(img, size, area, dtype), label),
                num_parallel_calls=autotune, **tfcompat.unordered())
    ds = ds.batch(ctx.pipeline_batch_size, drop_remainder=True)
    steps = max(1, (examples or 0) // ctx.global_batch_size)
    ds = tfcompat.with_cardinality(ds.take(steps), steps)
    return ds.prefetch(autotune)


def synthetic_dataset(case: Case, split: str, ctx: RunContext, examples: int | None) -> Any:
    """One random batch (normalised-image range, compute dtype) repeated: no decode, no
    host work, so the step measures the model alone. Train: ``examples // global batch``
    batches per epoch; eval: 10 batches."""
    from harness.tfcompat import tf

    p = case.params
    size, batch = int(p["image_size"]), ctx.pipeline_batch_size
    seed = [ctx.seed, 1 if split == "train" else 2]
    images = tf.random.stateless_uniform([batch, size, size, 3], seed, minval=-1.7, maxval=2.2)
    labels = tf.random.stateless_uniform([batch], seed, maxval=int(p["num_classes"]),
                                         dtype=tf.int32)
    steps = max(1, (examples or 0) // ctx.global_batch_size) if split == "train" else 10
    ds = tf.data.Dataset.from_tensors((tf.cast(images, ctx.compute_dtype), labels))
    return ds.repeat(steps)

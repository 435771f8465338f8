"""Image folder (``class_name/xxx.jpg``) -> ImageNet-format TFRecords plus a labels file."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from harness import BenchError, read_user_bytes, read_user_text, write_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LABELS_FILE = "labels.txt"
EXAMPLES_PER_SHARD = 1024  # ImageNet's layout: 1024 train shards of ~1250 images


@dataclass(frozen=True)
class Written:
    split: str
    examples: int
    files: list[str]


def list_images(src: str) -> tuple[list[str], dict[str, list[str]]]:
    """Class names (sorted sub-folder names) and each class's image files (sorted)."""
    if not os.path.isdir(src):
        raise BenchError(f"{src}: no such directory")
    classes = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    if not classes:
        raise BenchError(f"{src}: no class sub-folders (expected {src}/<class_name>/<image>.jpg)")
    images = {}
    for name in classes:
        folder = os.path.join(src, name)
        images[name] = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                              if f.lower().endswith(IMAGE_EXTENSIONS))
    empty = [name for name, files in images.items() if not files]
    if empty:
        raise BenchError(f"{os.path.join(src, empty[0])}: no images "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return classes, images


def read_labels(path: str) -> list[str]:
    return [line.strip() for line in read_user_text(path, "labels file").splitlines()
            if line.strip()]


def label_map(out: str, classes: list[str]) -> tuple[list[str], bool]:
    """The class order: an existing ``OUT/labels.txt`` (so a later validation folder gets the
    same labels) or the sorted class names; and whether labels.txt is still to be written."""
    path = os.path.join(out, LABELS_FILE)
    if os.path.exists(path):
        known = read_labels(path)
        missing = [c for c in classes if c not in known]
        if missing:
            raise BenchError(f"{path}: class {missing[0]!r} of the image folder is not listed; "
                             f"remove the file to start a new label set")
        return known, False
    return classes, True


def encode_example(path: str, label: int, synset: str) -> bytes:
    """One ``tf.train.Example`` as build_imagenet_data.py writes it; images that are not
    3-channel JPEG (PNG, grey, CMYK) are re-encoded as RGB JPEG."""
    from harness.tfcompat import tf

    data = read_user_bytes(path, "image", 1 << 30)
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        is_rgb_jpeg = (bool(tf.io.is_jpeg(data))
                       and int(tf.io.decode_jpeg(data, channels=0).shape[-1]) == 3)
    except tf.errors.InvalidArgumentError as exc:
        raise BenchError(f"{path}: not a readable image: "
                         f"{str(exc).splitlines()[0][:120]}") from None
    if not is_rgb_jpeg:
        data = tf.io.encode_jpeg(image, quality=95).numpy()
    height, width = int(image.shape[0]), int(image.shape[1])

    def b(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def i(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    features = {
        "image/encoded": b(data),
        "image/format": b(b"JPEG"),
        "image/class/label": i(label),
        "image/class/synset": b(synset.encode()),
        "image/class/text": b(synset.encode()),
        "image/filename": b(os.path.basename(path).encode()),
        "image/height": i(height),
        "image/width": i(width),
        "image/channels": i(3),
        "image/colorspace": b(b"RGB"),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


PARTIAL = ".partial"  # shards are written under this suffix and renamed when all are done


def write_split(out: str, split: str, items: list[tuple[str, int, str]], shards: int) -> Written:
    """Write ``items`` (path, label, class) to ``OUT/split-0000i-of-0000n.partial``, round
    robin (:func:`convert` renames them once every split is whole)."""
    from harness.tfcompat import tf

    shards = shards or max(1, -(-len(items) // EXAMPLES_PER_SHARD))
    shards = min(shards, len(items))
    files = [os.path.join(out, f"{split}-{i:05d}-of-{shards:05d}") for i in range(shards)]
    writers = [tf.io.TFRecordWriter(f + PARTIAL) for f in files]
    try:
        for n, (path, label, synset) in enumerate(items):
            writers[n % shards].write(encode_example(path, label, synset))
    finally:
        for writer in writers:
            writer.close()
    return Written(split, len(items), files)


def convert(src: str, out: str, split: str = "train", eval_fraction: float = 0.0,
            shards: int = 0, seed: int = 0) -> list[Written]:
    """Convert ``SRC/<class>/<image>`` to TFRecords in ``out``: ``split`` gets the images,
    less ``eval_fraction`` of each class held out to ``validation`` (at least one image of a
    class with two or more). Examples are shuffled (seeded) across shards; labels are the
    class indices of ``labels.txt`` (0-based)."""
    if not 0.0 <= eval_fraction < 1.0:
        raise BenchError(f"--eval-fraction: expected a value in [0, 1), got {eval_fraction}")
    classes, images = list_images(src)
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    stale = sorted(f for f in os.listdir(out) if f.startswith(f"{split}-")
             or (eval_fraction and f.startswith("validation-")))
    if stale:
        raise BenchError(f"{os.path.join(out, stale[0])}: already exists; use an empty OUT_DIR "
                         f"or remove the old split")
    labels, new_labels = label_map(out, classes)
    rng = random.Random(seed)
    kept: list[tuple[str, int, str]] = []
    held: list[tuple[str, int, str]] = []
    for name in classes:
        files = list(images[name])
        rng.shuffle(files)
        n_held = round(len(files) * eval_fraction) if eval_fraction else 0
        if eval_fraction and len(files) >= 2:
            n_held = min(max(n_held, 1), len(files) - 1)
        entries = [(f, labels.index(name), name) for f in files]
        held += entries[:n_held]
        kept += entries[n_held:]
    rng.shuffle(kept)
    # all or nothing: a corrupt image leaves no partial split (which a later run would
    # train on silently) and no labels.txt, so the same command can simply be rerun
    written: list[Written] = []
    try:
        written.append(write_split(out, split, kept, shards))
        if held:
            written.append(write_split(out, "validation", sorted(held), shards))
    except BaseException:
        for name in os.listdir(out):
            if name.endswith(PARTIAL) and name.startswith((f"{split}-", "validation-")):
                os.unlink(os.path.join(out, name))
        if created and not os.listdir(out):
            os.rmdir(out)
        raise
    for item in written:
        for path in item.files:
            os.replace(path + PARTIAL, path)
    if new_labels:
        write_atomic(os.path.join(out, LABELS_FILE), "".join(f"{c}\n" for c in classes))
    return written

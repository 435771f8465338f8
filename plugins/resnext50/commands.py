"""``bench data images SRC_DIR OUT_DIR``: an image folder to ImageNet-format TFRecords."""

from __future__ import annotations

from typing import Any

import click

from harness import data_group


@click.command(name="images")
@click.argument("src_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--split", default="train", show_default=True,
              type=click.Choice(["train", "validation"]),
              help="Name of the split the images go to.")
@click.option("--eval-fraction", default=0.0, show_default=True, type=float,
              help="Hold out this fraction of each class as the validation split.")
@click.option("--shards", default=0, show_default=True, type=click.IntRange(min=0),
              help="Files per split (0: one per 1024 images).")
@click.option("--seed", default=0, show_default=True, type=int, help="Shuffle seed.")
def images(src_dir: str, out_dir: str, split: str, eval_fraction: float, shards: int,
           seed: int) -> None:
    """Convert SRC_DIR/<class_name>/<image> to ImageNet-format TFRecords in OUT_DIR.

    Writes SPLIT-00000-of-0000N files (image/encoded JPEG, image/class/label, ...) and
    OUT_DIR/labels.txt (line i = the class of label i). A later run into the same OUT_DIR
    (e.g. --split validation) reuses labels.txt. Read them with
    data: {source: tfrecord, path: OUT_DIR} and params.num_classes = the number of classes.
    """
    from plugins.resnext50.images import LABELS_FILE, convert

    written = convert(src_dir, out_dir, split=split, eval_fraction=eval_fraction,
                      shards=shards, seed=seed)
    for item in written:
        click.echo(f"{item.split}: {item.examples} examples in {len(item.files)} files")
    click.echo(f"labels: {out_dir.rstrip('/')}/{LABELS_FILE}")


@click.command(name="shapes")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--per-class", default=200, show_default=True, type=click.IntRange(min=1),
              help="Images per class.")
@click.option("--size", default=32, show_default=True, type=click.IntRange(min=8),
              help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int)
def shapes(out_dir: str, per_class: int, size: int, seed: int) -> None:
    """Write a learnable image folder OUT_DIR/<shape>/<i>.jpg (circle, square, triangle,
    cross in random colours and places) to convert with `bench data images`."""
    from plugins.resnext50.shapes import write_shapes

    counts = write_shapes(out_dir, per_class, size, seed)
    click.echo(f"{sum(counts.values())} images in {len(counts)} classes under {out_dir}")


def register(cli: Any) -> None:
    group = data_group(cli)
    group.add_command(images)
    group.add_command(shapes)

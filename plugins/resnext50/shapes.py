"""A learnable image set for smoke and accuracy checks: coloured shapes written as JPEGs.

Each class is a shape (circle, square, triangle, cross) drawn at a random place and size in a
random bright colour on a random dark, noisy background, so only the shape tells the classes
apart (colour and position carry no label information).
"""

from __future__ import annotations

import os

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")


def draw(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size`` x ``size`` RGB uint8 image of ``shape``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = rng.uniform(0.25, 0.42) * size
    cx, cy = rng.uniform(r, size - r, 2)
    dx, dy = x - cx, y - cy
    if shape == "circle":
        mask = dx**2 + dy**2 < r**2
    elif shape == "square":
        side = r * 0.85
        mask = (np.abs(dx) < side) & (np.abs(dy) < side)
    elif shape == "triangle":
        mask = (dy > -r) & (dy < r) & (np.abs(dx) < (dy + r) / 2)
    elif shape == "cross":
        arm = r / 3
        mask = ((np.abs(dx) < arm) & (np.abs(dy) < r)) | ((np.abs(dy) < arm) & (np.abs(dx) < r))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    background = rng.uniform(0, 90, 3)
    foreground = rng.uniform(150, 255, 3)
    image = np.where(mask[..., None], foreground, background)
    image = image + rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_shapes(out: str, per_class: int, size: int = 32, seed: int = 0) -> dict[str, int]:
    """Write ``out/<shape>/<i>.jpg`` for every shape; returns images per class."""
    from harness.tfcompat import tf

    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        folder = os.path.join(out, shape)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            jpeg = tf.io.encode_jpeg(draw(shape, size, rng), quality=95).numpy()
            with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as fh:
                fh.write(jpeg)
    return {shape: per_class for shape in SHAPES}

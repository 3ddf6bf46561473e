"""Random kernel inputs that reach the edge cases: boxes on and over the border, zero-area and sub-pixel boxes,
and prototypes with many sign changes."""

from __future__ import annotations

import numpy as np


def random_boxes(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> np.ndarray:
    """(n, 4) float32 xyxy boxes clipped to the image, as boxes_to_source returns them: some partly outside before the
    clip, some on the border, some zero-area, some sub-pixel."""
    h, w = shape
    x1, y1 = rng.uniform(-0.2 * w, w, n), rng.uniform(-0.2 * h, h, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, 0.8 * w, n), y1 + rng.uniform(0, 0.8 * h, n)], axis=1)
    special = [
        [0, 0, w, h],  # the whole image
        [-10, -10, w + 10, h + 10],  # larger than the image
        [w / 2, h / 2, w / 2, h / 2],  # zero area
        [w / 3, 0, w / 3, h],  # zero width
        [w / 4 + 0.2, h / 4 + 0.2, w / 4 + 0.7, h / 4 + 0.7],  # sub-pixel: usually no whole pixel inside
        [np.floor(w / 4), np.floor(h / 4), np.floor(w / 4) + 0.5, np.floor(h / 4) + 0.5],  # exactly one pixel
        [w - 0.5, h - 0.5, w, h],  # the bottom-right corner
        [0, h - 1, w, h],  # the last row
    ]
    boxes = np.concatenate([boxes, np.array(special, np.float64)])
    return boxes.clip(0, [w, h, w, h]).astype(np.float32)


def random_prototypes(rng: np.random.Generator, grid: tuple[int, int], nm: int = 32) -> np.ndarray:
    """Noise plus smooth blobs: many sign changes, so that interpolation errors would show."""
    noise = rng.normal(0, 1, (nm, *grid))
    yy, xx = np.mgrid[: grid[0], : grid[1]] / max(grid)
    blobs = np.sin(rng.uniform(2, 12, (nm, 1, 1)) * xx + rng.uniform(0, 6, (nm, 1, 1))) * np.cos(
        rng.uniform(2, 12, (nm, 1, 1)) * yy)
    return (0.5 * noise + 2 * blobs).astype(np.float32)

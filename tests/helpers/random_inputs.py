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


def faulty_head() -> np.ndarray:
    """(4 + 2 + 2, 10) raw head: one anchor per way an overflowing (FP16) model breaks a candidate. Class 0 scores 0.9,
    class 1 0.1 unless said otherwise; coefficients are the anchor index.

    0 good; 1 x = inf; 2 y = NaN; 3 w < 0; 4 h < 0; 5 w = 0, h = -0.0 (a zero-size box: kept); 6 class 1 scores inf;
    7 class 0 NaN, class 1 0.9 (no best class: NaN propagates as in torch.max); 8 scores -inf and 0.1 (no candidate);
    9 w = inf with scores below the threshold (no candidate, not counted).
    """
    pred = np.zeros((8, 10), np.float32)
    pred[0:2] = 20.0
    pred[2:4] = 10.0
    pred[4], pred[5] = 0.9, 0.1
    pred[6:8] = np.arange(10, dtype=np.float32)
    pred[0, 1], pred[1, 2], pred[2, 3], pred[3, 4] = np.inf, np.nan, -1.0, -0.5
    pred[2, 5], pred[3, 5] = 0.0, -0.0
    pred[5, 6] = np.inf
    pred[4, 7], pred[5, 7] = np.nan, 0.9
    pred[4, 8] = -np.inf
    pred[2, 9], pred[4, 9] = np.inf, 0.1
    return pred


def faulty_rows() -> np.ndarray:
    """(9, 6 + 2) NMS-in-graph rows, conf 0.9 and class 1 unless said otherwise; coefficients are the row index.

    0 good; 1 x1 = -inf; 2 y2 = NaN; 3 x2 < x1; 4 y2 < y1; 5 conf inf; 6 conf NaN (no candidate); 7 class NaN;
    8 a zero-size box (kept).
    """
    pred = np.zeros((9, 8), np.float32)
    pred[:, :4] = [10, 10, 30, 40]
    pred[:, 4], pred[:, 5] = 0.9, 1
    pred[:, 6] = pred[:, 7] = np.arange(9)
    pred[1, 0], pred[2, 3], pred[3, 2], pred[4, 3] = -np.inf, np.nan, 5, 5
    pred[5, 4], pred[6, 4], pred[7, 5] = np.inf, np.nan, np.nan
    pred[8, :4] = [10, 10, 10, 10]
    return pred

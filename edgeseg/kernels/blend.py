"""Mask fill: each object's colour alpha-blended into the frame over its mask crop, and nowhere else.

The kernel visits only the pixels of each object's box, so drawing N masks costs the sum of their box
areas, not N passes over the frame. The blend is done in integers, so it is exact and the same on every
machine: alpha is snapped to the nearest 1/256, w = floor(alpha * 256 + 0.5), and each channel becomes

    (frame * (256 - w) + color * w + 128) >> 8

which is round-half-up of frame * (1 - a) + color * a for a = w / 256 (alpha 0.5 is exactly w = 128).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .jit import kernel


@kernel("void(uint8[:, :, ::1], uint8[::1], int64[::1], int64[:, ::1], uint8[:, ::1], int64)")
def _blend_masks(frame, masks, offsets, boxes, colors, weight):
    keep = 256 - weight
    channels = frame.shape[2]
    for i in range(boxes.shape[0]):
        x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        width, start = x1 - x0, offsets[i]
        for y in range(y0, y1):
            row = start + (y - y0) * width
            for x in range(x0, x1):
                if masks[row + x - x0] == 0:
                    continue
                for c in range(channels):
                    mixed = np.int64(frame[y, x, c]) * keep + np.int64(colors[i, c]) * weight + 128
                    frame[y, x, c] = mixed >> 8


def blend_weight(alpha: float) -> int:
    """The kernel's integer weight of the colour, out of 256: floor(alpha * 256 + 0.5)."""
    return int(math.floor(alpha * 256 + 0.5))


def blend_masks(frame: np.ndarray, crops: Sequence[np.ndarray], origins, colors, alpha: float) -> np.ndarray:
    """Blends colors[i] into `frame` (in place) where crops[i] is non-zero, objects in order (later over earlier).

    frame (H, W, 3) uint8, C-contiguous and writeable; crops: N (h_i, w_i) uint8 or bool masks, crop i placed
    at origins[i] = (x0, y0) and lying inside the frame; colors (N, 3) integers in [0, 255] (BGR, as the
    frame); alpha in [0, 1], the colour's weight (snapped to 1/256, see the module docstring).
    Returns `frame`.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {getattr(frame, 'shape', type(frame))} "
                         f"{getattr(frame, 'dtype', '')}")
    if not frame.flags.c_contiguous or not frame.flags.writeable:
        raise ValueError("frame must be C-contiguous and writeable: it is blended in place (np.ascontiguousarray it)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    n = len(crops)
    origins = np.asarray(origins).reshape(-1, 2) if n else np.zeros((0, 2), np.int64)
    colors = np.asarray(colors).reshape(-1, 3) if n else np.zeros((0, 3), np.int64)
    if origins.shape != (n, 2) or not np.issubdtype(origins.dtype, np.integer):
        raise ValueError(f"origins must be ({n}, 2) integers, got {origins.shape} {origins.dtype}")
    in_range = n == 0 or (colors.min() >= 0 and colors.max() <= 255)
    if colors.shape != (n, 3) or not np.issubdtype(colors.dtype, np.integer) or not in_range:
        raise ValueError(f"colors must be ({n}, 3) integers in [0, 255], got {colors.shape} {colors.dtype}")
    height, width = frame.shape[:2]
    boxes = np.empty((n, 4), np.int64)
    for i, (crop, (x0, y0)) in enumerate(zip(crops, origins, strict=True)):
        crop = np.asarray(crop)
        if crop.ndim != 2 or crop.dtype not in (np.uint8, np.bool_):
            raise ValueError(f"crop {i} must be (h, w) uint8 or bool, got {crop.shape} {crop.dtype}")
        h, w = crop.shape
        if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
            raise ValueError(f"crop {i} {crop.shape} at ({x0}, {y0}) does not fit the {width}x{height} frame")
        boxes[i] = x0, y0, x0 + w, y0 + h
    weight = blend_weight(alpha)
    if n == 0 or weight == 0:
        return frame
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(areas, out=offsets[1:])
    # one flat buffer of all crops (the sum of the box areas): the kernel then sees one contiguous array
    masks = np.concatenate([np.asarray(crop).view(np.uint8).ravel() for crop in crops])
    _blend_masks(frame, masks, offsets, boxes, colors.astype(np.uint8), weight)
    return frame

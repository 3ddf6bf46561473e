"""Mask fill on the GPU: each object's colour blended into the frame over its mask, in integers, exactly as
edgeseg/kernels/blend.py. Objects overlap and later ones are drawn over earlier ones, so one thread owns one pixel
of the boxes' union and blends the objects covering it in order: the CPU's result, with no two threads writing
the same pixel."""

from __future__ import annotations

import numpy as np
from numba import cuda

from .jit import as_device, check_masks, is_device_array, kernel, launch
from .workspace import Workspace, fresh


@kernel
def _blend_masks(frame, masks, starts, boxes, colors, weight, union):
    t = cuda.grid(1)
    width = union[2] - union[0]
    if t >= width * (union[3] - union[1]):
        return
    y, x = union[1] + t // width, union[0] + t % width
    keep = 256 - weight
    for i in range(boxes.shape[0]):
        x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if not (x0 <= x < x1 and y0 <= y < y1) or masks[starts[i] + (y - y0) * (x1 - x0) + x - x0] == 0:
            continue
        for c in range(3):
            mixed = np.int64(frame[y, x, c]) * keep + np.int64(colors[i, c]) * weight + 128
            frame[y, x, c] = mixed >> 8


def blend_masks_cuda(frame, masks, starts: np.ndarray, boxes: np.ndarray, colors: np.ndarray, weight: int,
                     workspace: Workspace | None = None):
    """Blends colors[i] into the device `frame` (in place) where object i's mask is non-zero, later over earlier.

    frame (H, W, 3) uint8 device array; masks: flat uint8 buffer (device or host), object i's mask starts at
    masks[starts[i]] and covers boxes[i] = [x0, y0, x1, y1) (inside the frame) row by row; colors (N, 3) integers in
    [0, 255]; weight: the colour's weight out of 256 (kernels.blend.blend_weight); workspace: for the tables
    (fresh buffers if None). Returns `frame`.
    """
    if not is_device_array(frame):
        raise ValueError("frame must be a device array: it is blended in place on the GPU (cuda.to_device it)")
    frame, masks = as_device(frame, np.uint8, "frame"), as_device(masks, np.uint8, "masks")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    boxes, colors = np.reshape(np.asarray(boxes, np.int64), (-1, 4)), np.reshape(np.asarray(colors), (-1, 3))
    n = len(boxes)
    if starts.shape != (n,) or colors.shape != (n, 3):
        raise ValueError(f"starts must be ({n},) and colors ({n}, 3), got {starts.shape} and {colors.shape}")
    if n and (colors.min() < 0 or colors.max() > 255 or not np.issubdtype(colors.dtype, np.integer)):
        raise ValueError("colors must be integers in [0, 255]")
    height, width = frame.shape[:2]
    if n and (boxes[:, :2].min() < 0 or np.any(boxes[:, 2:] < boxes[:, :2]) or boxes[:, 2].max() > width
              or boxes[:, 3].max() > height):
        raise ValueError(f"boxes must lie inside the {width}x{height} frame")
    check_masks(masks, starts, boxes)
    if not 0 <= weight <= 256:
        raise ValueError(f"weight must be in [0, 256], got {weight}")
    if n == 0 or weight == 0:
        return frame
    union = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()], np.int64)
    pixels = int((union[2] - union[0]) * (union[3] - union[1]))
    if pixels:
        ws = workspace if workspace is not None else fresh()
        d_starts, d_boxes, d_colors, d_union = ws.upload_many("blend tables", [starts, boxes, colors.astype(np.int64),
                                                                               union])
        launch(_blend_masks, pixels, frame, masks, d_starts, d_boxes, d_colors, int(weight), d_union)
    return frame

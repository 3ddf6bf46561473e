"""Cut-outs on the GPU: every object's pixels (or its opacity) in an image of a region of the frame, as
edgeseg/kernels/isolate.py cut_out makes them, all objects in one launch, one thread per output pixel."""

from __future__ import annotations

import numpy as np
from numba import cuda

from .jit import as_device, check_masks, kernel, launch, owner
from .workspace import Workspace, fresh

MODES = {"black": 3, "transparent": 4, "mask": 1}  # output channels of each mode


@kernel
def _cut_outs(frame, masks, mask_starts, mask_boxes, regions, offsets, channels, out):
    t = cuda.grid(1)
    if t >= offsets[offsets.shape[0] - 1]:
        return
    i = owner(offsets, t)
    local = t - offsets[i]
    width = regions[i, 2] - regions[i, 0]
    y, x = regions[i, 1] + local // width, regions[i, 0] + local % width
    mx0, my0, mx1, my1 = mask_boxes[i, 0], mask_boxes[i, 1], mask_boxes[i, 2], mask_boxes[i, 3]
    on = mx0 <= x < mx1 and my0 <= y < my1 and masks[mask_starts[i] + (y - my0) * (mx1 - mx0) + x - mx0] != 0
    base = t * channels
    if channels == 1:
        out[base] = 255 if on else 0
        return
    for c in range(3):
        out[base + c] = frame[y, x, c] if on or channels == 4 else 0
    if channels == 4:
        out[base + 3] = 255 if on else 0


def cut_outs_cuda(frame, masks, mask_starts: np.ndarray, mask_boxes: np.ndarray, regions: np.ndarray, mode: str,
                  workspace: Workspace | None = None, output: Workspace | None = None):
    """N objects cut out of `frame` on the GPU, each over its region, as kernels.isolate.cut_out.

    frame (H, W, 3) uint8 BGR, device (a host array is uploaded); masks: flat uint8 buffer (device or host), object
    i's mask starts at masks[mask_starts[i]] and covers its pixel box mask_boxes[i] = [x0, y0, x1, y1) row by row;
    regions (N, 4) int [x0, y0, x1, y1): the frame pixels each output covers (inside the frame). mode "black",
    "transparent" or "mask" as cut_out; tables come from `workspace`, the cut-outs from `output` (fresh where
    None). Returns (flat uint8 device buffer, offsets (N + 1,) int64 host): object i's
    cut-out is flat[offsets[i]:offsets[i+1]] as (y1 - y0, x1 - x0, channels) ((y1 - y0, x1 - x0) for "mask").
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'black', 'transparent' or 'mask', got {mode!r}")
    frame, masks = as_device(frame, np.uint8, "frame"), as_device(masks, np.uint8, "masks")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    mask_starts = np.ascontiguousarray(mask_starts, dtype=np.int64)
    mask_boxes, regions = (np.ascontiguousarray(np.reshape(b, (-1, 4)), dtype=np.int64) for b in (mask_boxes, regions))
    n = len(regions)
    if mask_boxes.shape != (n, 4) or mask_starts.shape != (n,):
        raise ValueError(f"mask_boxes must be ({n}, 4) and mask_starts ({n},), got {mask_boxes.shape} and "
                         f"{mask_starts.shape}")
    check_masks(masks, mask_starts, mask_boxes)
    height, width = frame.shape[:2]
    if n and (regions[:, :2].min() < 0 or np.any(regions[:, 2:] < regions[:, :2]) or regions[:, 2].max() > width
              or regions[:, 3].max() > height):
        raise ValueError(f"regions must lie inside the {width}x{height} frame")
    if n and (mask_boxes[:, :2].min() < 0 or mask_boxes[:, 2].max() > width or mask_boxes[:, 3].max() > height):
        raise ValueError(f"mask boxes must lie inside the {width}x{height} frame")
    pixels = np.zeros(n + 1, np.int64)
    np.cumsum((regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1]), out=pixels[1:])
    channels = MODES[mode]
    out = (output if output is not None else fresh()).array("cut-outs", int(pixels[-1]) * channels, np.uint8)
    if pixels[-1]:
        ws = workspace if workspace is not None else fresh()
        d_starts, d_boxes, d_regions, d_pixels = ws.upload_many("cut-out tables", [mask_starts, mask_boxes, regions,
                                                                                   pixels])
        launch(_cut_outs, int(pixels[-1]), frame, masks, d_starts, d_boxes, d_regions, d_pixels, channels, out)
    return out, pixels * channels

"""Letterboxed HWC BGR uint8 image -> CHW RGB float in [0, 1], in one pass."""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel("void(uint8[:, :, ::1], float32[:, :, ::1], int64, int64, int64)")
def _hwc_bgr_to_chw_rgb(image, out, top, left, pad_value):
    channels, out_h, out_w = out.shape
    h, w = image.shape[0], image.shape[1]
    scale = np.float32(255.0)
    pad = np.float32(pad_value) / scale
    for c in range(channels):
        src_c = channels - 1 - c  # BGR -> RGB
        for y in range(out_h):
            sy = y - top
            for x in range(out_w):
                sx = x - left
                if 0 <= sy < h and 0 <= sx < w:
                    # a true division, as Ultralytics does: x / 255 and x * (1 / 255) differ in the last bit
                    out[c, y, x] = np.float32(image[sy, sx, src_c]) / scale
                else:
                    out[c, y, x] = pad


def hwc_bgr_to_chw_rgb(image: np.ndarray, out: np.ndarray, top: int, left: int, pad_value: int = 114) -> None:
    """Writes `image` (h, w, 3) uint8 BGR into `out` (3, H, W) float32 at (top, left), padding the rest.

    The pad is `pad_value / 255`, as if the uint8 image had been padded first (Ultralytics' letterbox).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (h, w, 3) uint8, got {image.shape} {image.dtype}")
    if out.dtype != np.float32 or out.ndim != 3 or out.shape[0] != 3 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous (3, H, W) float32 array, got {out.shape} {out.dtype}")
    if top < 0 or left < 0 or top + image.shape[0] > out.shape[1] or left + image.shape[1] > out.shape[2]:
        raise ValueError(f"image {image.shape[:2]} at ({top}, {left}) does not fit in {out.shape[1:]}")
    _hwc_bgr_to_chw_rgb(np.ascontiguousarray(image), out, top, left, pad_value)

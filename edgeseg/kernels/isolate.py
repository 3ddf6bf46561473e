"""Cut-outs: one object's pixels (or its opacity) written into an image of any extent of the frame.

The kernel visits only the pixels that both the object's mask crop and the output cover, so a cut-out
costs the object's box area plus the output's allocation, never a pass over the frame per object.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel("void(uint8[:, :, ::1], uint8[:, ::1], int64, int64, uint8[:, :, ::1], int64, int64, int64)")
def _paste_object(frame, mask, mask_x0, mask_y0, out, out_x0, out_y0, opacity_channel):
    mask_h, mask_w = mask.shape
    out_h, out_w = out.shape[0], out.shape[1]
    y_start, y_stop = max(mask_y0, out_y0), min(mask_y0 + mask_h, out_y0 + out_h)
    x_start, x_stop = max(mask_x0, out_x0), min(mask_x0 + mask_w, out_x0 + out_w)
    for y in range(y_start, y_stop):
        for x in range(x_start, x_stop):
            if mask[y - mask_y0, x - mask_x0] == 0:
                continue
            if opacity_channel < 0:
                for c in range(3):
                    out[y - out_y0, x - out_x0, c] = frame[y, x, c]
            else:
                out[y - out_y0, x - out_x0, opacity_channel] = 255


def cut_out(frame: np.ndarray, mask: np.ndarray, origin, region, mode: str) -> np.ndarray:
    """One object cut out of `frame` over `region`.

    frame (H, W, 3) uint8 BGR; mask (h, w) uint8, non-zero on the object, placed at origin (x0, y0);
    region (x0, y0, x1, y1) int: the frame pixels the output covers (inside the frame).
    mode "black": (rh, rw, 3) uint8, the object's pixels on black.
    "transparent": (rh, rw, 4) uint8 BGRA, the frame's pixels with alpha 255 on the object and 0 elsewhere.
    "mask": (rh, rw) uint8, 255 on the object and 0 elsewhere.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be (h, w) uint8, got {mask.shape} {mask.dtype}")
    x0, y0, x1, y1 = (int(v) for v in region)
    if not (0 <= x0 <= x1 <= frame.shape[1] and 0 <= y0 <= y1 <= frame.shape[0]):
        raise ValueError(f"region {(x0, y0, x1, y1)} does not lie inside the {frame.shape[1]}x{frame.shape[0]} frame")
    shape = (y1 - y0, x1 - x0)
    if mode not in ("black", "transparent", "mask"):
        raise ValueError(f"mode must be 'black', 'transparent' or 'mask', got {mode!r}")
    frame, mask = np.ascontiguousarray(frame), np.ascontiguousarray(mask)
    x_origin, y_origin = int(origin[0]), int(origin[1])
    if mode == "black":
        out = np.zeros((*shape, 3), np.uint8)
        _paste_object(frame, mask, x_origin, y_origin, out, x0, y0, -1)
        return out
    opacity = np.zeros((*shape, 1), np.uint8)
    _paste_object(frame, mask, x_origin, y_origin, opacity, x0, y0, 0)
    if mode == "mask":
        return opacity[:, :, 0]
    if 0 in shape:
        return np.zeros((*shape, 4), np.uint8)
    # one interleaving pass in OpenCV: several times faster than NumPy's strided channel writes. Imported here
    # because the build loads this package without OpenCV to compile the kernels (aot.py).
    import cv2

    return cv2.merge([frame[y0:y1, x0:x1], opacity])

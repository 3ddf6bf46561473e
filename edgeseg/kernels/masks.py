"""Instance masks from prototypes, computed only inside each object's box.

Ultralytics (retina_masks=True) computes every mask over the whole frame: logits = coefficients @
prototypes at prototype resolution, an optional bilinear upsample by `f` (1, 2 or 4) so that the
letterbox padding falls on whole pixels, a crop of that padding, a bilinear resize to the source
image, a crop to the box, and a threshold at 0. Bilinear interpolation only reads the neighbours of
each output pixel, so the same numbers come out when each stage is evaluated on the small window
of pixels the box needs. The cost is then the sum of box areas, not N x image area.
"""

from __future__ import annotations

import numpy as np

from .jit import jit, kernel

SLIVER = 32  # a prototype window narrower than 1/SLIVER of the grid is computed alone, not as whole rows


@jit
def _linear_taps(out_start, out_stop, scale, in_size, in_offset, index0, index1, weight1):
    """PyTorch's bilinear (align_corners=False) source indices and weights for outputs [out_start, out_stop)."""
    half = np.float32(0.5)
    for k in range(out_stop - out_start):
        src = scale * (np.float32(out_start + k) + half) - half
        if src < 0:
            src = np.float32(0.0)
        i0 = min(int(np.floor(src)), in_size - 1)
        weight1[k] = min(max(src - np.float32(i0), np.float32(0.0)), np.float32(1.0))
        index0[k] = in_offset + i0
        index1[k] = in_offset + i0 + (1 if i0 < in_size - 1 else 0)


@jit
def _window_taps(x0, y0, x1, y1, scale_y, scale_x, crop):
    """The bilinear taps of output pixels [y0, y1) x [x0, x1) into the window crop = (top, left, bottom, right) of
    the input: (rows0, rows1, row weights, cols0, cols1, column weights), indices global."""
    h, w = y1 - y0, x1 - x0
    rows0, rows1, wrow = np.empty(h, np.int64), np.empty(h, np.int64), np.empty(h, np.float32)
    cols0, cols1, wcol = np.empty(w, np.int64), np.empty(w, np.int64), np.empty(w, np.float32)
    _linear_taps(y0, y1, scale_y, crop[2] - crop[0], crop[0], rows0, rows1, wrow)
    _linear_taps(x0, x1, scale_x, crop[3] - crop[1], crop[1], cols0, cols1, wcol)
    return rows0, rows1, wrow, cols0, cols1, wcol


@jit
def _blend_columns(src, src_row0, src_col0, rows0, rows1, cols0, cols1, wcol, out_w):
    """The first pass of a separable bilinear resample: each source row that output rows read, blended along x
    once per output column. Returns (those rows, the index of the first in src)."""
    one = np.float32(1.0)
    first, stop = rows0[0] - src_row0, rows1[len(rows0) - 1] - src_row0 + 1
    across = np.empty((stop - first, out_w), np.float32)
    for i in range(stop - first):
        row = first + i
        for c in range(out_w):
            wx1 = wcol[c]
            across[i, c] = src[row, cols0[c] - src_col0] * (one - wx1) + src[row, cols1[c] - src_col0] * wx1
    return across, first


@jit
def _resample(src, src_row0, src_col0, rows0, rows1, wrow, cols0, cols1, wcol, out):
    """out[r, c] = bilinear blend of src at the given (global) taps; src starts at (src_row0, src_col0).

    Separable: each source row is blended along x once per output column, then pairs of those rows
    along y. PyTorch's CPU kernel evaluates (x taps) then (y taps) in the same float32 order, so
    sharing the x blends between output rows changes no bit of the result.
    """
    one = np.float32(1.0)
    out_h, out_w = out.shape
    across, first = _blend_columns(src, src_row0, src_col0, rows0, rows1, cols0, cols1, wcol, out_w)
    for r in range(out_h):
        a, b, wy1 = rows0[r] - src_row0 - first, rows1[r] - src_row0 - first, wrow[r]
        wy0 = one - wy1
        for c in range(out_w):
            out[r, c] = across[a, c] * wy0 + across[b, c] * wy1


@jit
def _resample_above(src, src_row0, src_col0, rows0, rows1, wrow, cols0, cols1, wcol, threshold, out):
    """_resample thresholded as it goes: out (h * w,) uint8 row-major gets 1 where the blend is above `threshold`.
    The same float32 blend, compared at once instead of stored: no (h, w) float buffer to write and read back,
    which after the network has run (caches cold) is most of a mask's cost."""
    one = np.float32(1.0)
    out_w = len(cols0)
    across, first = _blend_columns(src, src_row0, src_col0, rows0, rows1, cols0, cols1, wcol, out_w)
    for r in range(len(rows0)):
        a, b, wy1 = rows0[r] - src_row0 - first, rows1[r] - src_row0 - first, wrow[r]
        wy0 = one - wy1
        for c in range(out_w):
            out[r * out_w + c] = 1 if across[a, c] * wy0 + across[b, c] * wy1 > threshold else 0


@jit
def _window_logits(protos, coefs, r0, r1, c0, c1):
    """coefs . protos over the window [r0, r1) x [c0, c1) of the prototype grid."""
    logits = np.zeros((r1 - r0, c1 - c0), np.float32)
    for k in range(protos.shape[0]):
        coef = coefs[k]
        for r in range(r1 - r0):
            for c in range(c1 - c0):
                logits[r, c] += coef * protos[k, r0 + r, c0 + c]
    return logits


@kernel("void(float32[:, :, ::1], float32[:, ::1], int64[:, ::1], int64, int64[::1], int64, int64, int64[::1], "
        "uint8[::1])")
def _masks_in_boxes(protos, coefs, bounds, upsample, crop, out_h, out_w, offsets, out):
    num_protos, proto_h, proto_w = protos.shape
    crop_h, crop_w = crop[2] - crop[0], crop[3] - crop[1]
    scale_y = np.float32(crop_h) / np.float32(out_h)
    scale_x = np.float32(crop_w) / np.float32(out_w)
    scale_up = np.float32(1.0 / upsample)
    for i in range(bounds.shape[0]):
        x0, y0, x1, y1 = bounds[i, 0], bounds[i, 1], bounds[i, 2], bounds[i, 3]
        h, w = y1 - y0, x1 - x0
        if h <= 0 or w <= 0:
            continue
        # stage 2: source pixels -> taps in the (upsampled) prototype grid, crop offset included
        rows0, rows1, wrow, cols0, cols1, wcol = _window_taps(x0, y0, x1, y1, scale_y, scale_x, crop)
        u_r0, u_r1, u_c0, u_c1 = rows0[0], rows1[h - 1] + 1, cols0[0], cols1[w - 1] + 1
        # stage 1 (when upsample > 1): the upsampled window -> taps in the prototype grid
        urows0, urows1, uwrow = (np.empty(u_r1 - u_r0, np.int64), np.empty(u_r1 - u_r0, np.int64),
                                 np.empty(u_r1 - u_r0, np.float32))
        ucols0, ucols1, uwcol = (np.empty(u_c1 - u_c0, np.int64), np.empty(u_c1 - u_c0, np.int64),
                                 np.empty(u_c1 - u_c0, np.float32))
        if upsample > 1:
            _linear_taps(u_r0, u_r1, scale_up, proto_h, 0, urows0, urows1, uwrow)
            _linear_taps(u_c0, u_c1, scale_up, proto_w, 0, ucols0, ucols1, uwcol)
            p_r0, p_r1, p_c0, p_c1 = urows0[0], urows1[-1] + 1, ucols0[0], ucols1[-1] + 1
        else:
            p_r0, p_r1, p_c0, p_c1 = u_r0, u_r1, u_c0, u_c1
        # logits = coefficients . prototypes on the window's rows, whole rows unless the window is a sliver: a row
        # is contiguous, and summing whole rows measured 1.5-2x faster than a window a third as wide (warm caches or
        # cold), while windows only a few prototypes wide are cheaper alone. The whole-row call passes its bounds as
        # 0 and proto_w, not through p_c0 and p_c1: inlined with those, LLVM compiles it for contiguous rows (one
        # call with the bounds chosen before it measured 2x slower than either)
        if (p_c1 - p_c0) * SLIVER >= proto_w:
            p_c0, p_c1 = 0, proto_w
            logits = _window_logits(protos, coefs[i], p_r0, p_r1, 0, proto_w)
        else:
            logits = _window_logits(protos, coefs[i], p_r0, p_r1, p_c0, p_c1)
        if upsample > 1:
            window, w_r0, w_c0 = np.empty((u_r1 - u_r0, u_c1 - u_c0), np.float32), u_r0, u_c0
            _resample(logits, p_r0, p_c0, urows0, urows1, uwrow, ucols0, ucols1, uwcol, window)
        else:  # the logits are the window, from wherever they start
            window, w_r0, w_c0 = logits, p_r0, p_c0
        _resample_above(window, w_r0, w_c0, rows0, rows1, wrow, cols0, cols1, wcol, np.float32(0.0),
                        out[offsets[i] : offsets[i + 1]])


@kernel("void(uint8[::1], int64[::1], int64[:, ::1], int64[::1], int64, int64, int64[:, ::1], int64[::1], uint8[::1])")
def _input_masks_to_source(flat, offsets, bounds, crop, out_h, out_w, out_bounds, out_offsets, out):
    crop_h, crop_w = crop[2] - crop[0], crop[3] - crop[1]
    scale_y = np.float32(crop_h) / np.float32(out_h)
    scale_x = np.float32(crop_w) / np.float32(out_w)
    half = np.float32(0.5)
    for i in range(bounds.shape[0]):
        x0, y0, x1, y1 = out_bounds[i, 0], out_bounds[i, 1], out_bounds[i, 2], out_bounds[i, 3]
        h, w = y1 - y0, x1 - x0
        if h <= 0 or w <= 0:
            continue
        rows0, rows1, wrow, cols0, cols1, wcol = _window_taps(x0, y0, x1, y1, scale_y, scale_x, crop)
        r_lo, r_hi, c_lo, c_hi = rows0[0], rows1[h - 1] + 1, cols0[0], cols1[w - 1] + 1
        # the input mask over the taps' window: the object's crop, zero around it
        window = np.zeros((r_hi - r_lo, c_hi - c_lo), np.float32)
        bx0, by0, bx1, by1 = bounds[i, 0], bounds[i, 1], bounds[i, 2], bounds[i, 3]
        for r in range(max(r_lo, by0), min(r_hi, by1)):
            for c in range(max(c_lo, bx0), min(c_hi, bx1)):
                window[r - r_lo, c - c_lo] = flat[offsets[i] + (r - by0) * (bx1 - bx0) + c - bx0]
        _resample_above(window, r_lo, c_lo, rows0, rows1, wrow, cols0, cols1, wcol, half,
                        out[out_offsets[i] : out_offsets[i + 1]])


def input_masks_to_source(
    flat: np.ndarray,
    bounds: np.ndarray,
    crop: tuple[int, int, int, int],
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary masks in the network's input frame -> the source image's, as Ultralytics brings them there to draw
    (scale_masks: the letterbox padding cropped, a bilinear resize to the source, > 0.5), each only over the window
    its crop can reach.

    flat: the N crops laid end to end (box_offsets(bounds)), bounds (N, 4) int64 [x0, y0, x1, y1) in the input
    frame; crop (top, left, bottom, right): the image's place in the input (letterbox.content_box); out_shape (H, W).
    Returns (flat uint8 0/1 buffer, offsets (N + 1,), source windows (N, 4) int64 [x0, y0, x1, y1)).
    """
    flat = np.ascontiguousarray(flat, dtype=np.uint8)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64).reshape(-1, 4)
    offsets = box_offsets(bounds)
    if len(flat) != offsets[-1]:
        raise ValueError(f"{len(flat)} mask bytes for boxes holding {offsets[-1]} pixels")
    out_h, out_w = out_shape
    top, left, bottom, right = crop
    if not (0 <= top < bottom and 0 <= left < right) or out_h < 1 or out_w < 1:
        raise ValueError(f"bad content box {crop} or source shape {out_shape}")
    windows = np.zeros_like(bounds)
    # source pixel p reads input taps floor(s * (p + 0.5) - 0.5) and the next one, s = content / source size
    for axis, (size, start, out_size) in enumerate(((right - left, left, out_w), (bottom - top, top, out_h))):
        scale = size / out_size
        low = (bounds[:, axis] - start).clip(0, size)
        high = (bounds[:, axis + 2] - start).clip(0, size)
        first = np.floor((low - 0.5) / scale - 0.5).astype(np.int64) - 1
        stop = np.ceil((high + 0.5) / scale - 0.5).astype(np.int64) + 1
        reaches = high > low
        windows[:, axis] = np.where(reaches, first.clip(0, out_size), 0)
        windows[:, axis + 2] = np.where(reaches, stop.clip(0, out_size), 0)
    out_offsets = box_offsets(windows)
    out = np.zeros(int(out_offsets[-1]), np.uint8)
    _input_masks_to_source(flat, offsets, bounds, np.array(crop, np.int64), int(out_h), int(out_w), windows,
                           out_offsets, out)
    return out, out_offsets, windows


def check_mask_inputs(protos_shape: tuple[int, ...], coefs_shape: tuple[int, ...], bounds: np.ndarray, upsample: int,
                      crop: tuple[int, int, int, int], out_shape: tuple[int, int]) -> None:
    """Raises ValueError unless masks_in_boxes' arguments (or its GPU twin's) fit together; bounds (N, 4) int64."""
    if len(protos_shape) != 3 or len(coefs_shape) != 2 or coefs_shape[1] != protos_shape[0]:
        raise ValueError(f"protos must be (nm, mh, mw) and coefs (N, nm), got {protos_shape} and {coefs_shape}")
    if bounds.shape != (coefs_shape[0], 4):
        raise ValueError(f"bounds must be ({coefs_shape[0]}, 4), got {bounds.shape}")
    out_h, out_w = out_shape
    if len(bounds) and (bounds[:, :2].min() < 0 or bounds[:, 2].max() > out_w or bounds[:, 3].max() > out_h):
        raise ValueError(f"bounds must lie inside the {out_w}x{out_h} image")
    top, left, bottom, right = crop
    if upsample not in (1, 2, 4) or not (0 <= top < bottom <= protos_shape[1] * upsample) or not (
        0 <= left < right <= protos_shape[2] * upsample
    ):
        raise ValueError(f"bad upsample {upsample} or crop {crop} for prototypes {protos_shape}")


def box_offsets(boxes: np.ndarray) -> np.ndarray:
    """Offsets (N + 1,) int64 of N boxes' pixels laid end to end: boxes (N, 4) [a0, b0, a1, b1) in either axis order,
    an empty or inverted box holding none."""
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    offsets = np.zeros(len(boxes) + 1, np.int64)
    np.cumsum(areas, out=offsets[1:])
    return offsets


def masks_in_boxes(
    protos: np.ndarray,
    coefs: np.ndarray,
    bounds: np.ndarray,
    upsample: int,
    crop: tuple[int, int, int, int],
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Binary masks of N objects at source resolution, each only over its pixel box.

    protos (nm, mh, mw) float32; coefs (N, nm) float32; bounds (N, 4) int64 pixel boxes
    [x0, y0, x1, y1) in the source image (out_shape (H, W)); `upsample` and `crop`
    (top, left, bottom, right in the upsampled prototype grid) from letterbox.mask_geometry.
    Returns (flat uint8 0/1 buffer, offsets (N + 1,) int64): object i's mask is
    flat[offsets[i]:offsets[i+1]].reshape(y1 - y0, x1 - x0).
    """
    protos = np.ascontiguousarray(protos, dtype=np.float32)
    coefs = np.ascontiguousarray(coefs, dtype=np.float32)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    check_mask_inputs(protos.shape, coefs.shape, bounds, upsample, crop, out_shape)
    out_h, out_w = out_shape
    offsets = box_offsets(bounds)
    flat = np.zeros(int(offsets[-1]), np.uint8)
    crop_arr = np.array(crop, np.int64)
    _masks_in_boxes(protos, coefs, bounds, int(upsample), crop_arr, int(out_h), int(out_w), offsets, flat)
    return flat, offsets

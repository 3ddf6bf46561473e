"""Instance masks from prototypes on the GPU, only inside each object's box: the CPU kernel's arithmetic, per pixel.

edgeseg/kernels/masks.py evaluates, per object, three stages on the window of pixels the box needs: logits =
coefficients . prototypes, an optional bilinear upsample by `f`, and the bilinear resize to the source image, then
the threshold. Each value of each stage depends only on its position (the bilinear taps of output index k are a
function of k alone), so here each stage is one launch with one thread per value of every object's window, and the
values are the CPU kernel's bit for bit: the same taps, the same float32 operations in the same order, products
never fused into an FMA (see jit.py).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .jit import THREADS, as_device, blocks, device_function, kernel, mul, owner


def linear_taps(size: int, scale: np.float32, in_size: int, in_offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear (align_corners=False) taps of outputs 0..size-1: (index0, index1) int64 and weight1 float32.

    The CPU kernel's _linear_taps for the whole axis, in NumPy float32 (each operation rounded, as there).
    """
    half = np.float32(0.5)
    src = np.float32(scale) * (np.arange(size).astype(np.float32) + half) - half
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    weight1 = np.minimum(np.maximum(src - i0.astype(np.float32), np.float32(0.0)), np.float32(1.0))
    i1 = i0 + (i0 < in_size - 1)
    return i0 + in_offset, i1 + in_offset, weight1.astype(np.float32)


@device_function
def _bilinear(src, start, width, r0, r1, wy1, c0, c1, wx1):
    """Blend of the window src[start : start + rows * width] (row-major, `width` wide) at local taps; x, then y."""
    one = np.float32(1.0)
    wx0 = one - wx1
    top = mul(src[start + r0 * width + c0], wx0) + mul(src[start + r0 * width + c1], wx1)
    bottom = mul(src[start + r1 * width + c0], wx0) + mul(src[start + r1 * width + c1], wx1)
    return mul(top, one - wy1) + mul(bottom, wy1)


@kernel
def _logits(protos, coefs, windows, offsets, out):
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i = owner(offsets, t)
    local = t - offsets[i]
    width = windows[i, 3] - windows[i, 1]
    r, c = windows[i, 0] + local // width, windows[i, 1] + local % width
    acc = np.float32(0.0)
    for k in range(protos.shape[0]):
        acc = acc + mul(coefs[i, k], protos[k, r, c])
    out[t] = acc


@kernel
def _resample(src, src_windows, src_offsets, rows0, rows1, wrow, cols0, cols1, wcol, windows, offsets, out):
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i = owner(offsets, t)
    local = t - offsets[i]
    width = windows[i, 3] - windows[i, 1]
    r, c = windows[i, 0] + local // width, windows[i, 1] + local % width
    top, left = src_windows[i, 0], src_windows[i, 1]
    out[t] = _bilinear(src, src_offsets[i], src_windows[i, 3] - left, rows0[r] - top, rows1[r] - top, wrow[r],
                       cols0[c] - left, cols1[c] - left, wcol[c])


@kernel
def _threshold(src, src_windows, src_offsets, rows0, rows1, wrow, cols0, cols1, wcol, bounds, offsets, out, nonzero):
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i = owner(offsets, t)
    local = t - offsets[i]
    width = bounds[i, 2] - bounds[i, 0]
    y, x = bounds[i, 1] + local // width, bounds[i, 0] + local % width
    top, left = src_windows[i, 0], src_windows[i, 1]
    value = _bilinear(src, src_offsets[i], src_windows[i, 3] - left, rows0[y] - top, rows1[y] - top, wrow[y],
                      cols0[x] - left, cols1[x] - left, wcol[x])
    if value > 0:
        out[t] = 1
        nonzero[i] = 1  # every writer stores the same 1: the race is harmless
    else:
        out[t] = 0


def _flat_offsets(windows: np.ndarray) -> np.ndarray:
    """Offsets (N + 1,) int64 of N row-major windows [r0, c0, r1, c1) laid end to end."""
    sizes = np.maximum(windows[:, 2] - windows[:, 0], 0) * np.maximum(windows[:, 3] - windows[:, 1], 0)
    offsets = np.zeros(len(windows) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _launch(func, count: int, *args) -> None:
    if count:
        func[blocks(count), THREADS](*args)


def masks_in_boxes_cuda(protos, coefs, bounds: np.ndarray, upsample: int, crop: tuple[int, int, int, int],
                        out_shape: tuple[int, int]):
    """Binary masks of N objects at source resolution on the GPU, each only over its pixel box: the CPU kernel's
    masks_in_boxes, bit for bit.

    protos (nm, mh, mw) float32 and coefs (N, nm) float32: device arrays (host arrays are uploaded); bounds (N, 4)
    int64 host pixel boxes [x0, y0, x1, y1) in the (H, W) = out_shape image; upsample and crop from
    letterbox.mask_geometry. Returns (flat uint8 0/1 device buffer, offsets (N + 1,) int64 host, nonzero (N,) uint8
    device: 1 where the object's mask has a pixel set): object i's mask is flat[offsets[i]:offsets[i+1]] as
    (y1 - y0, x1 - x0).
    """
    protos, coefs = as_device(protos, np.float32, "protos"), as_device(coefs, np.float32, "coefs")
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    if protos.ndim != 3 or coefs.ndim != 2 or coefs.shape[1] != protos.shape[0]:
        raise ValueError(f"protos must be (nm, mh, mw) and coefs (N, nm), got {protos.shape} and {coefs.shape}")
    if bounds.shape != (coefs.shape[0], 4):
        raise ValueError(f"bounds must be ({coefs.shape[0]}, 4), got {bounds.shape}")
    out_h, out_w = out_shape
    if len(bounds) and (bounds[:, :2].min() < 0 or bounds[:, 2].max() > out_w or bounds[:, 3].max() > out_h):
        raise ValueError(f"bounds must lie inside the {out_w}x{out_h} image")
    _, proto_h, proto_w = protos.shape
    top, left, bottom, right = crop
    if upsample not in (1, 2, 4) or not (0 <= top < bottom <= proto_h * upsample) or not (
        0 <= left < right <= proto_w * upsample
    ):
        raise ValueError(f"bad upsample {upsample} or crop {crop} for prototypes {protos.shape}")
    n = len(bounds)
    # taps of every source row and column (the CPU kernel computes the same numbers per box)
    rows = linear_taps(out_h, np.float32(bottom - top) / np.float32(out_h), bottom - top, top)
    cols = linear_taps(out_w, np.float32(right - left) / np.float32(out_w), right - left, left)
    valid = (bounds[:, 2] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 1])
    safe = np.where(valid[:, None], bounds, [[0, 0, 1, 1]])  # empty boxes get an empty window below
    # the window of the (upsampled) prototype grid each box reads: [r0, c0, r1, c1)
    up = np.stack([rows[0][safe[:, 1]], cols[0][safe[:, 0]], rows[1][safe[:, 3] - 1] + 1, cols[1][safe[:, 2] - 1] + 1],
                  axis=1) * valid[:, None]
    if upsample > 1:
        scale_up = np.float32(1.0 / upsample)
        urows = linear_taps(proto_h * upsample, scale_up, proto_h, 0)
        ucols = linear_taps(proto_w * upsample, scale_up, proto_w, 0)
        up_safe = np.where(valid[:, None], up, [[0, 0, 1, 1]])
        proto = np.stack([urows[0][up_safe[:, 0]], ucols[0][up_safe[:, 1]], urows[1][up_safe[:, 2] - 1] + 1,
                          ucols[1][up_safe[:, 3] - 1] + 1], axis=1) * valid[:, None]
    else:
        proto = up
    proto_offsets, up_offsets = _flat_offsets(proto), _flat_offsets(up)
    areas = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1]) * valid
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(areas, out=offsets[1:])

    d_proto, d_proto_offsets = cuda.to_device(proto), cuda.to_device(proto_offsets)
    logits = cuda.device_array(int(proto_offsets[-1]), np.float32)
    _launch(_logits, logits.shape[0], protos, coefs, d_proto, d_proto_offsets, logits)
    if upsample > 1:
        d_up, d_up_offsets = cuda.to_device(up), cuda.to_device(up_offsets)
        window = cuda.device_array(int(up_offsets[-1]), np.float32)
        _launch(_resample, window.shape[0], logits, d_proto, d_proto_offsets, *map(cuda.to_device, urows),
                *map(cuda.to_device, ucols), d_up, d_up_offsets, window)
    else:
        d_up, d_up_offsets, window = d_proto, d_proto_offsets, logits
    flat = cuda.device_array(int(offsets[-1]), np.uint8)
    nonzero = cuda.to_device(np.zeros(n, np.uint8))
    _launch(_threshold, flat.shape[0], window, d_up, d_up_offsets, *map(cuda.to_device, rows),
            *map(cuda.to_device, cols), cuda.to_device(bounds), cuda.to_device(offsets), flat, nonzero)
    return flat, offsets, nonzero


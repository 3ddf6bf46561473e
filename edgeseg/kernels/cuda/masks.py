"""Instance masks from prototypes on the GPU, only inside each object's box: the CPU kernel's arithmetic, per pixel.

edgeseg/kernels/masks.py evaluates, per object, three stages on the window of pixels the box needs: logits =
coefficients . prototypes, an optional bilinear upsample by `f`, and the bilinear resize to the source image, then
the threshold. Each value of each stage depends only on its position (the bilinear taps of output index k are a
function of k alone), so here the logits are one launch with one thread per value of every object's window, and
the rest is one more, with one thread per mask pixel, which computes the upsampled values it reads where it needs
them. The values are the CPU kernel's bit for bit: the same taps, the same float32 operations in the same order,
products never fused into an FMA (see jit.py).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..masks import box_offsets, check_mask_inputs
from .jit import as_device, device_function, kernel, launch, mul, owner
from .workspace import Workspace, fresh


def linear_taps(size: int, scale: np.float32, in_size: int,
                in_offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
def _position(windows, offsets, t):
    """Element t of the windows laid end to end: (object i, row, column) in the grid that its window
    windows[i] = [r0, c0, r1, c1) covers."""
    i = owner(offsets, t)
    local = t - offsets[i]
    width = windows[i, 3] - windows[i, 1]
    return i, windows[i, 0] + local // width, windows[i, 1] + local % width


@device_function
def _mix(v00, v01, v10, v11, wx1, wy1):
    """The bilinear mix of four neighbours ((row, column) 00, 01, 10, 11) with the second ones' weights: along x,
    then along y, the CPU kernel's operations in its order."""
    one = np.float32(1.0)
    wx0 = one - wx1
    upper = mul(v00, wx0) + mul(v01, wx1)
    lower = mul(v10, wx0) + mul(v11, wx1)
    return mul(upper, one - wy1) + mul(lower, wy1)


@device_function
def _bilinear(src, src_windows, src_offsets, i, index, weight, r, c):
    """Object i's bilinear value at output (r, c), read from its window of `src` (windows laid end to end, row-major)
    at the taps of row r and column c. Taps of both axes (axis 0: rows, 1: columns): the two source indices
    index[axis, 0 or 1, k] and the weight of the second, weight[axis, k]."""
    top, left = src_windows[i, 0], src_windows[i, 1]
    start, width = src_offsets[i], src_windows[i, 3] - left
    row0, row1 = start + (index[0, 0, r] - top) * width, start + (index[0, 1, r] - top) * width
    c0, c1 = index[1, 0, c] - left, index[1, 1, c] - left
    return _mix(src[row0 + c0], src[row0 + c1], src[row1 + c0], src[row1 + c1], weight[1, c], weight[0, r])


@device_function
def _store(out, nonzero, t, i, value):
    """The threshold at 0 of one mask pixel."""
    if value > 0:
        out[t] = 1
        nonzero[i] = 1  # every writer stores the same 1: the race is harmless
    else:
        out[t] = 0


@kernel
def _logits(protos, coefs, windows, offsets, out):
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i, r, c = _position(windows, offsets, t)
    acc = np.float32(0.0)
    for k in range(protos.shape[0]):
        acc = acc + mul(coefs[i, k], protos[k, r, c])
    out[t] = acc


@kernel
def _threshold(logits, windows, offsets, index, weight, boxes, box_offsets, out, nonzero):
    """The mask pixels of the boxes (windows [y0, x0, y1, x1)): the logits resized to the source, thresholded."""
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i, y, x = _position(boxes, box_offsets, t)
    _store(out, nonzero, t, i, _bilinear(logits, windows, offsets, i, index, weight, y, x))


@kernel
def _threshold_upsampled(logits, windows, offsets, up_index, up_weight, index, weight, boxes, box_offsets, out,
                         nonzero):
    """_threshold with the upsampling stage between: each of a pixel's four upsampled logits is computed where it
    is read, with the same arithmetic a stored one would have had. One launch and no buffer instead of two and
    one, for a few more reads of cached logits."""
    t = cuda.grid(1)
    if t >= out.shape[0]:
        return
    i, y, x = _position(boxes, box_offsets, t)
    r0, r1, c0, c1 = index[0, 0, y], index[0, 1, y], index[1, 0, x], index[1, 1, x]
    value = _mix(_bilinear(logits, windows, offsets, i, up_index, up_weight, r0, c0),
                 _bilinear(logits, windows, offsets, i, up_index, up_weight, r0, c1),
                 _bilinear(logits, windows, offsets, i, up_index, up_weight, r1, c0),
                 _bilinear(logits, windows, offsets, i, up_index, up_weight, r1, c1), weight[1, x], weight[0, y])
    _store(out, nonzero, t, i, value)


def _taps(out_shape: tuple[int, int], crop: tuple[int, int, int, int], proto_shape: tuple[int, int],
          upsample: int) -> dict[str, tuple[tuple, tuple]]:
    """The bilinear taps (linear_taps) of the rows and columns of each resampling stage: "source", every source
    pixel's (the CPU kernel computes the same numbers per box), and with upsample > 1 "upsample", every row and
    column of the upsampled prototypes'."""
    out_h, out_w = out_shape
    top, left, bottom, right = crop
    taps = {"source": (linear_taps(out_h, np.float32(bottom - top) / np.float32(out_h), bottom - top, top),
                       linear_taps(out_w, np.float32(right - left) / np.float32(out_w), right - left, left))}
    if upsample > 1:
        scale_up = np.float32(1.0 / upsample)
        taps["upsample"] = (linear_taps(proto_shape[0] * upsample, scale_up, proto_shape[0], 0),
                            linear_taps(proto_shape[1] * upsample, scale_up, proto_shape[1], 0))
    return taps


def _prototype_windows(taps: dict, boxes: np.ndarray) -> np.ndarray:
    """The window [r0, c0, r1, c1) of the prototype grid each box [y0, x0, y1, x1) reads, through each resampling
    stage in turn. Empty boxes get empty windows."""
    valid = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[:, None]
    window = boxes
    for rows, cols in taps.values():  # "source" first: its taps read the upsampled grid, whose taps read the prototypes
        safe = np.where(valid, window, [[0, 0, 1, 1]])
        window = np.stack([rows[0][safe[:, 0]], cols[0][safe[:, 1]], rows[1][safe[:, 2] - 1] + 1,
                           cols[1][safe[:, 3] - 1] + 1], axis=1) * valid
    return window


def masks_in_boxes_cuda(protos, coefs, bounds: np.ndarray, upsample: int, crop: tuple[int, int, int, int],
                        out_shape: tuple[int, int], workspace: Workspace | None = None,
                        output: Workspace | None = None):
    """Binary masks of N objects at source resolution on the GPU, each only over its pixel box: the CPU kernel's
    masks_in_boxes, bit for bit.

    protos (nm, mh, mw) float32 and coefs (N, nm) float32: device arrays (host arrays are uploaded); bounds (N, 4)
    int64 host pixel boxes [x0, y0, x1, y1) in the (H, W) = out_shape image; upsample and crop from
    letterbox.mask_geometry. Scratch buffers and tables come from `workspace`, the returned buffers from `output`
    (fresh ones where None). Returns (flat uint8 0/1 device buffer, offsets (N + 1,) int64 host, nonzero (N,) uint8
    device: 1 where the object's mask has a pixel set): object i's mask is flat[offsets[i]:offsets[i+1]] as
    (y1 - y0, x1 - x0).
    """
    ws = workspace if workspace is not None else fresh()
    output = output if output is not None else fresh()
    protos, coefs = as_device(protos, np.float32, "protos"), as_device(coefs, np.float32, "coefs")
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    check_mask_inputs(protos.shape, coefs.shape, bounds, upsample, crop, out_shape)
    geometry = (tuple(out_shape), tuple(crop), tuple(protos.shape[1:]), upsample)
    taps, d_taps = ws.table(("taps", geometry), lambda: _upload(_taps(*geometry)))
    boxes = bounds[:, [1, 0, 3, 2]]  # [y0, x0, y1, x1): rows first, as the windows
    proto = _prototype_windows(taps, boxes)
    # every per-frame table in one upload: the prototype windows and the boxes, each with their offsets
    tables = [proto, box_offsets(proto), boxes, box_offsets(boxes)]
    d_proto, d_proto_offsets, d_bounds, d_offsets = ws.upload_many("mask tables", tables)
    proto_offsets, offsets = tables[1], tables[3]

    logits = ws.array("logits", int(proto_offsets[-1]), np.float32)
    launch(_logits, logits.shape[0], protos, coefs, d_proto, d_proto_offsets, logits)
    flat = output.array("masks", int(offsets[-1]), np.uint8)
    nonzero = output.upload("nonzero", np.zeros(len(bounds), np.uint8))
    if upsample > 1:
        launch(_threshold_upsampled, flat.shape[0], logits, d_proto, d_proto_offsets, *d_taps["upsample"],
                *d_taps["source"], d_bounds, d_offsets, flat, nonzero)
    else:
        launch(_threshold, flat.shape[0], logits, d_proto, d_proto_offsets, *d_taps["source"], d_bounds, d_offsets,
                flat, nonzero)
    return flat, offsets, nonzero


def _upload(taps: dict) -> tuple[dict, dict]:
    """(host taps, the same on the device): each stage's taps of rows and columns packed as the kernels take them
    (see _bilinear), two arguments instead of six, since Numba's launch costs microseconds per array argument."""
    device = {}
    for stage, axes in taps.items():
        size = max(len(i0) for i0, _, _ in axes)
        index, weight = np.zeros((2, 2, size), np.int64), np.zeros((2, size), np.float32)
        for axis, (i0, i1, w1) in enumerate(axes):
            index[axis, 0, : len(i0)], index[axis, 1, : len(i1)], weight[axis, : len(w1)] = i0, i1, w1
        device[stage] = (cuda.to_device(index), cuda.to_device(weight))
    return taps, device

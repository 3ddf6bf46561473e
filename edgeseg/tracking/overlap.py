"""How much objects overlap by their masks, for MaskTracker: mask IoU on box crops, and the grouping of the duplicate
detections one object gets when the detector hesitates between two classes.

A mask here is what Masks stores: a crop (h, w) uint8 0/1 and the origin (x0, y0) of its top-left pixel. Two masks
can only share pixels inside the intersection of their crops' rectangles, so the IoU reads only that part of each
crop, and only pairs whose rectangles meet are looked at.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def crop_rects(crops: Sequence[np.ndarray], origins: np.ndarray) -> np.ndarray:
    """The pixel rectangles [x0, y0, x1, y1) (N, 4) int64 the crops cover."""
    origins = np.asarray(origins, np.int64).reshape(-1, 2)
    sizes = np.array([c.shape[::-1] for c in crops], np.int64).reshape(-1, 2)  # (w, h)
    return np.concatenate([origins, origins + sizes], 1)


def mask_areas(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel counts (N,) int64 of the crops."""
    return np.array([np.count_nonzero(c) for c in crops], np.int64)


def pair_mask_iou(crops_a: Sequence[np.ndarray], rects_a: np.ndarray, areas_a: np.ndarray,
                  crops_b: Sequence[np.ndarray], rects_b: np.ndarray, areas_b: np.ndarray,
                  rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mask IoU (K,) float32 of the pairs (crops_a[rows[k]], crops_b[cols[k]]); rects from crop_rects (they may be
    shifted, as a track's last mask moved to where the track is predicted), areas from mask_areas. A pair whose
    rectangles do not meet, or whose masks are both empty, has IoU 0."""
    out = np.zeros(len(rows), np.float32)
    if len(rows) == 0:
        return out
    a, b = rects_a[rows], rects_b[cols]
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, 2:], b[:, 2:])
    meet = np.flatnonzero((hi > lo).all(1))
    if len(meet) == 0:
        return out
    # plain ints from here: the loop runs once per pair, and NumPy scalars are slow to index with
    union = (areas_a[rows[meet]] + areas_b[cols[meet]]).tolist()
    spans = np.concatenate([lo[meet], hi[meet], a[meet, :2], b[meet, :2]], 1).tolist()
    for k, i, j, (x0, y0, x1, y1, ax, ay, bx, by), both in zip(meet.tolist(), rows[meet].tolist(),
                                                                 cols[meet].tolist(), spans, union, strict=True):
        inter = np.count_nonzero(crops_a[i][y0 - ay : y1 - ay, x0 - ax : x1 - ax]
                                 & crops_b[j][y0 - by : y1 - by, x0 - bx : x1 - bx])
        out[k] = inter / (both - inter) if both > inter else 0.0
    return out


def mask_iou(crops_a: Sequence[np.ndarray], origins_a: np.ndarray, crops_b: Sequence[np.ndarray],
             origins_b: np.ndarray) -> np.ndarray:
    """Mask IoU (N, M) float32 of every mask of a with every mask of b, each a crop (h, w) uint8 0/1 at its origin
    (x0, y0), as Masks.crops and Masks.origins hold them; the same as IoU of the dense masks."""
    rects_a, rects_b = crop_rects(crops_a, origins_a), crop_rects(crops_b, origins_b)
    rows, cols = np.nonzero(_rects_meet(rects_a, rects_b))
    out = np.zeros((len(rects_a), len(rects_b)), np.float32)
    out[rows, cols] = pair_mask_iou(crops_a, rects_a, mask_areas(crops_a), crops_b, rects_b, mask_areas(crops_b),
                                    rows, cols)
    return out


def duplicate_owners(box_iou: np.ndarray, cls: np.ndarray, conf: np.ndarray, crops: Sequence[np.ndarray],
                     rects: np.ndarray, areas: np.ndarray, box_thresh: float, mask_thresh: float) -> np.ndarray:
    """Which detection stands for each one (N,) int64: the detections of different classes that are one object (box
    IoU >= box_thresh and mask IoU >= mask_thresh) are grouped under the best-scoring of them, greedily from the best
    score down, as NMS groups; a detection that nobody absorbs stands for itself. box_iou (N, N) of the detections,
    cls (N,) int64, conf (N,) float32, crops/rects/areas their masks (see pair_mask_iou)."""
    n = len(cls)
    owner = np.arange(n, dtype=np.int64)
    near = (box_iou >= box_thresh) & (cls[:, None] != cls[None, :])
    rows, cols = np.nonzero(np.triu(near, 1))
    if len(rows) == 0:
        return owner
    same = pair_mask_iou(crops, rects, areas, crops, rects, areas, rows, cols) >= mask_thresh
    if not same.any():
        return owner
    linked = np.zeros((n, n), bool)
    linked[rows[same], cols[same]] = True
    linked |= linked.T
    taken = np.zeros(n, bool)
    for i in np.argsort(-conf, kind="stable").tolist():
        if taken[i]:
            continue
        absorbed = np.flatnonzero(linked[i] & ~taken)
        owner[absorbed] = i
        taken[absorbed] = True
        taken[i] = True
    return owner


def _rects_meet(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) bool: rectangle a[i] and b[j] share a pixel."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return (hi > lo).all(2)

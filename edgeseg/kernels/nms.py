"""Box decoding and non-maximum suppression, with the semantics of Ultralytics' non_max_suppression."""

from __future__ import annotations

import math

import numpy as np

from .jit import jit, kernel


@jit
def _usable(pred, a, score):
    """True when anchor a's box (x, y, w, h) and a candidate's score can make a detection: all finite, w and h >= 0.
    An FP16 model that overflows gives inf and NaN; such a box would reach the results as NaN corners."""
    w, h = pred[2, a], pred[3, a]
    return (math.isfinite(score) and math.isfinite(pred[0, a]) and math.isfinite(pred[1, a]) and math.isfinite(w)
            and math.isfinite(h) and w >= 0 and h >= 0)


@kernel("int64(float32[:, ::1], int64, float32, boolean[::1], boolean, int64[::1], int64[::1], float32[::1], "
        "int64[::1])")
def _select_candidates(pred, num_classes, conf_thres, allowed, multi_label, anchors, classes, scores, dropped):
    num_anchors = pred.shape[1]
    count = 0
    unusable = 0
    if multi_label:
        for a in range(num_anchors):
            for c in range(num_classes):
                score = pred[4 + c, a]
                if score > conf_thres and allowed[c]:
                    if not _usable(pred, a, score):
                        unusable += 1
                        continue
                    anchors[count] = a
                    classes[count] = c
                    scores[count] = score
                    count += 1
        dropped[0] = unusable
        return count
    # best class per anchor, walking classes in the outer loop so that reads stay contiguous
    best = pred[4].copy()
    best_class = np.zeros(num_anchors, np.int64)
    for c in range(1, num_classes):
        row = pred[4 + c]
        for a in range(num_anchors):
            # strict: ties keep the first class, as torch.max does; a NaN score wins and stays (torch.max and
            # np.argmax propagate NaN), so an anchor with a NaN class score is no candidate
            if best[a] == best[a] and (row[a] > best[a] or row[a] != row[a]):
                best[a] = row[a]
                best_class[a] = c
    for a in range(num_anchors):
        if best[a] > conf_thres and allowed[best_class[a]]:
            if not _usable(pred, a, best[a]):
                unusable += 1
                continue
            anchors[count] = a
            classes[count] = best_class[a]
            scores[count] = best[a]
            count += 1
    dropped[0] = unusable
    return count


def select_candidates(
    pred: np.ndarray, num_classes: int, conf_thres: float, allowed: np.ndarray, multi_label: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Anchors whose class score beats `conf_thres`, from raw head output `pred` (4 + nc + nm, A) float32.

    One candidate per anchor (its best class; NaN if any class score is NaN, which is no candidate), or one per
    (anchor, class) above the threshold with `multi_label`. Classes where `allowed` (nc,) bool is False are dropped.
    So are candidates with an infinite score or a box (x, y, w, h) with a non-finite value or w or h < 0: their
    number is returned. Returns (anchor int64 (n,), class int64 (n,), score float32 (n,), dropped) in anchor order.
    """
    pred = np.ascontiguousarray(pred, dtype=np.float32)
    allowed = np.ascontiguousarray(allowed, dtype=np.bool_)
    if pred.ndim != 2 or pred.shape[0] < 4 + num_classes or allowed.shape != (num_classes,):
        raise ValueError(f"pred must be (4 + {num_classes} + nm, A) with allowed ({num_classes},), "
                         f"got {pred.shape} and {allowed.shape}")
    capacity = pred.shape[1]
    if multi_label:
        capacity = int(np.count_nonzero(pred[4 : 4 + num_classes] > np.float32(conf_thres)))
    anchors = np.empty(capacity, np.int64)
    classes = np.empty(capacity, np.int64)
    scores = np.empty(capacity, np.float32)
    dropped = np.zeros(1, np.int64)
    n = _select_candidates(pred, num_classes, np.float32(conf_thres), allowed, multi_label, anchors, classes, scores,
                           dropped)
    return anchors[:n], classes[:n], scores[:n], int(dropped[0])


@kernel("void(float32[:, ::1], int64[::1], float32[:, ::1])")
def _xywh_to_xyxy(pred, anchors, out):
    for i in range(anchors.shape[0]):
        a = anchors[i]
        half_w = pred[2, a] / np.float32(2.0)
        half_h = pred[3, a] / np.float32(2.0)
        out[i, 0] = pred[0, a] - half_w
        out[i, 1] = pred[1, a] - half_h
        out[i, 2] = pred[0, a] + half_w
        out[i, 3] = pred[1, a] + half_h


def xywh_to_xyxy(pred: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Centre-size boxes of the given anchors from `pred` (4 + ..., A) -> corner boxes (n, 4) float32."""
    pred = np.ascontiguousarray(pred, dtype=np.float32)
    anchors = np.ascontiguousarray(anchors, dtype=np.int64)
    out = np.empty((anchors.shape[0], 4), np.float32)
    _xywh_to_xyxy(pred, anchors, out)
    return out


@kernel("int64(float32[:, ::1], float32[::1], float64, int64, int64[::1])")
def _nms(boxes, scores, iou_thres, max_det, keep):
    n = boxes.shape[0]
    order = np.argsort(-scores, kind="mergesort")  # descending, ties in input order
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(n, np.bool_)
    zero = np.float32(0.0)
    count = 0
    for oi in range(n):
        i = order[oi]
        if suppressed[i]:
            continue
        keep[count] = i
        count += 1
        if count == max_det:  # later survivors cannot change earlier ones, so stopping here is exact
            break
        x1, y1, x2, y2, area = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], areas[i]
        for oj in range(oi + 1, n):
            j = order[oj]
            if suppressed[j]:
                continue
            w = max(zero, min(x2, boxes[j, 2]) - max(x1, boxes[j, 0]))
            h = max(zero, min(y2, boxes[j, 3]) - max(y1, boxes[j, 1]))
            inter = w * h
            if inter / (area + areas[j] - inter) > iou_thres:
                suppressed[j] = True
    return count


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float, max_det: int) -> np.ndarray:
    """Greedy NMS as torchvision.ops.nms: indices (k,) int64 of kept boxes, best score first, k <= max_det.

    boxes (n, 4) float32 xyxy, scores (n,) float32. A box is suppressed when its IoU with a kept,
    higher-scoring box is > iou_thres. Class-aware NMS offsets boxes by class before calling this.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"boxes must be (n, 4) and scores (n,), got {boxes.shape} and {scores.shape}")
    keep = np.empty(min(boxes.shape[0], max_det), np.int64)
    if keep.shape[0] == 0:
        return keep
    return keep[: _nms(boxes, scores, float(iou_thres), max_det, keep)]

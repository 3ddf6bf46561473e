"""Candidate filter, box decoding and greedy NMS on the GPU, with the CPU kernels' semantics (edgeseg/kernels/nms.py).

The candidates above the confidence threshold are few (tens to a few thousand of the 8400 anchors), so:
one thread per anchor appends its candidates to a list (order unknown, atomics), one thread per candidate finds
its rank by counting the candidates that come before it (score descending, then anchor and class: the CPU's stable
order), one thread per (candidate, 64 later candidates) sets the IoU > threshold bits, and one thread walks the
sorted list as the CPU does, reading those bits. Only counts and the kept detections go back to the host.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .jit import THREADS, as_device, blocks, kernel, larger, mul, smaller

WORD = 64  # candidates per suppression word


@kernel
def _candidates(pred, num_classes, conf_thres, allowed, multi_label, count, keys, classes, scores):
    a = cuda.grid(1)
    if a >= pred.shape[1]:
        return
    if multi_label:
        for c in range(num_classes):
            score = pred[4 + c, a]
            if score > conf_thres and allowed[c]:
                slot = cuda.atomic.add(count, 0, 1)
                keys[slot], classes[slot], scores[slot] = a * num_classes + c, c, score
        return
    best, best_class = pred[4, a], 0
    for c in range(1, num_classes):
        if pred[4 + c, a] > best:  # strict: ties keep the first class, as torch.max does
            best, best_class = pred[4 + c, a], c
    if best > conf_thres and allowed[best_class]:
        slot = cuda.atomic.add(count, 0, 1)
        keys[slot], classes[slot], scores[slot] = a * num_classes + best_class, best_class, best


@kernel
def _sort(pred, num_classes, keys, classes, scores, count, limit, class_offset, anchors, boxes, shifted, areas,
          conf, cls):
    """Writes candidate i at its rank (score descending, key ascending), when that rank is below `limit`."""
    i = cuda.grid(1)
    if i >= count:
        return
    score, key, rank = scores[i], keys[i], 0
    for j in range(count):
        if scores[j] > score or (scores[j] == score and keys[j] < key):
            rank += 1
    if rank >= limit:
        return
    a = key // num_classes
    half_w, half_h = pred[2, a] / np.float32(2.0), pred[3, a] / np.float32(2.0)
    x1, y1, x2, y2 = pred[0, a] - half_w, pred[1, a] - half_h, pred[0, a] + half_w, pred[1, a] + half_h
    shift = mul(np.float32(classes[i]), class_offset)
    sx1, sy1, sx2, sy2 = x1 + shift, y1 + shift, x2 + shift, y2 + shift
    anchors[rank], conf[rank], cls[rank] = a, score, classes[i]
    boxes[rank, 0], boxes[rank, 1], boxes[rank, 2], boxes[rank, 3] = x1, y1, x2, y2
    shifted[rank, 0], shifted[rank, 1], shifted[rank, 2], shifted[rank, 3] = sx1, sy1, sx2, sy2
    areas[rank] = mul(sx2 - sx1, sy2 - sy1)


@kernel
def _overlaps(boxes, areas, iou_thres, mask):
    """mask[i, w] bit b: candidate j = w * 64 + b comes after i and overlaps it by IoU > iou_thres."""
    t = cuda.grid(1)
    n, words = mask.shape
    if t >= n * words:
        return
    i, w = t // words, t % words
    zero, one = np.float32(0.0), np.uint64(1)
    x1, y1, x2, y2, area = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], areas[i]
    bits = np.uint64(0)
    for j in range(larger(i + 1, w * WORD), smaller(n, (w + 1) * WORD)):
        width = larger(zero, smaller(x2, boxes[j, 2]) - larger(x1, boxes[j, 0]))
        height = larger(zero, smaller(y2, boxes[j, 3]) - larger(y1, boxes[j, 1]))
        inter = mul(width, height)
        if inter / (area + areas[j] - inter) > iou_thres:  # float32 IoU against the float64 threshold, as the CPU
            bits |= one << np.uint64(j - w * WORD)
    mask[i, w] = bits


@kernel
def _greedy(mask, max_det, removed, keep, count):
    """One thread: the CPU kernel's greedy walk over the sorted candidates."""
    if cuda.grid(1) != 0:
        return
    n, words = mask.shape
    one = np.uint64(1)
    for w in range(words):
        removed[w] = np.uint64(0)
    kept = 0
    for i in range(n):
        if (removed[i // WORD] >> np.uint64(i % WORD)) & one:
            continue
        keep[kept] = i
        kept += 1
        if kept == max_det:  # later survivors cannot change earlier ones, so stopping here is exact
            break
        for w in range(i // WORD, words):
            removed[w] |= mask[i, w]
    count[0] = kept


@kernel
def _gather(keep, count, anchors, boxes, conf, cls, pred, coef_row, xyxy_out, conf_out, cls_out, coefs_out):
    p = cuda.grid(1)
    if p >= count[0]:
        return
    i = keep[p]
    for k in range(4):
        xyxy_out[p, k] = boxes[i, k]
    conf_out[p], cls_out[p] = conf[i], cls[i]
    for k in range(coefs_out.shape[1]):
        coefs_out[p, k] = pred[coef_row + k, anchors[i]]


def _launch(func, count: int, *args) -> None:
    if count:
        func[blocks(count), THREADS](*args)


def decode_raw_cuda(pred, num_classes: int, conf_thres: float, allowed: np.ndarray, multi_label: bool,
                    iou_thres: float, max_det: int, class_offset: float, max_candidates: int):
    """Raw head output (4 + nc + nm, A) float32 on the device -> kept detections, as postprocess.decode_raw.

    allowed (nc,) bool host; class_offset: the class-aware NMS box offset (0 for agnostic NMS); max_candidates:
    the top candidates NMS looks at. Returns (xyxy (N, 4) float32, conf (N,) float32, cls (N,) int64) on the host
    and coefs (N, nm) float32 on the device, best score first.
    """
    pred = as_device(pred, np.float32, "pred")
    allowed = np.ascontiguousarray(allowed, dtype=np.bool_)
    if pred.ndim != 2 or pred.shape[0] < 4 + num_classes or allowed.shape != (num_classes,):
        raise ValueError(f"pred must be (4 + {num_classes} + nm, A) with allowed ({num_classes},), "
                         f"got {pred.shape} and {allowed.shape}")
    if max_det < 1 or max_candidates < 1:
        raise ValueError(f"max_det and max_candidates must be positive, got {max_det} and {max_candidates}")
    num_anchors, nm = pred.shape[1], pred.shape[0] - 4 - num_classes
    capacity = num_anchors * (num_classes if multi_label and num_classes > 1 else 1)
    count = cuda.to_device(np.zeros(1, np.int64))
    keys, classes = cuda.device_array(capacity, np.int64), cuda.device_array(capacity, np.int64)
    scores = cuda.device_array(capacity, np.float32)
    _launch(_candidates, num_anchors, pred, num_classes, np.float32(conf_thres), cuda.to_device(allowed.view(np.uint8)),
            bool(multi_label and num_classes > 1), count, keys, classes, scores)
    found = int(count.copy_to_host()[0])  # the one wait before NMS: its launches are sized by this count
    n = min(found, max_candidates)
    anchors, conf, cls = (cuda.device_array(n, np.int64), cuda.device_array(n, np.float32),
                          cuda.device_array(n, np.int64))
    boxes, shifted, areas = (cuda.device_array((n, 4), np.float32), cuda.device_array((n, 4), np.float32),
                             cuda.device_array(n, np.float32))
    _launch(_sort, found, pred, num_classes, keys, classes, scores, found, n, np.float32(class_offset), anchors,
            boxes, shifted, areas, conf, cls)
    words = (n + WORD - 1) // WORD
    mask = cuda.device_array((n, words), np.uint64)
    _launch(_overlaps, n * words, shifted, areas, np.float64(iou_thres), mask)
    capacity = min(n, max_det)
    keep, kept = cuda.device_array(max(capacity, 1), np.int64), cuda.to_device(np.zeros(1, np.int64))
    if n:
        _greedy[1, 1](mask, max_det, cuda.device_array(words, np.uint64), keep, kept)
    xyxy, conf_out = cuda.device_array((capacity, 4), np.float32), cuda.device_array(capacity, np.float32)
    cls_out, coefs = cuda.device_array(capacity, np.int64), cuda.device_array((capacity, nm), np.float32)
    _launch(_gather, capacity, keep, kept, anchors, boxes, conf, cls, pred, 4 + num_classes, xyxy, conf_out, cls_out,
            coefs)
    k = int(kept.copy_to_host()[0])
    return xyxy.copy_to_host()[:k], conf_out.copy_to_host()[:k], cls_out.copy_to_host()[:k], coefs[:k]


@kernel
def _select_rows(pred, conf_thres, classes, filter_classes, max_det, rows, count):
    """One thread: the first max_det rows above conf_thres (and of the allowed classes), in row order."""
    if cuda.grid(1) != 0:
        return
    kept = 0
    for r in range(pred.shape[0]):
        if kept == max_det:
            break
        if not pred[r, 4] > conf_thres:
            continue
        if filter_classes:
            c, allowed = np.int64(pred[r, 5]), False
            for k in range(classes.shape[0]):
                if classes[k] == c:
                    allowed = True
            if not allowed:
                continue
        rows[kept] = r
        kept += 1
    count[0] = kept


@kernel
def _gather_rows(pred, rows, count, xyxy, conf, cls, coefs):
    p = cuda.grid(1)
    if p >= count[0]:
        return
    r = rows[p]
    for k in range(4):
        xyxy[p, k] = pred[r, k]
    conf[p], cls[p] = pred[r, 4], np.int64(pred[r, 5])
    for k in range(coefs.shape[1]):
        coefs[p, k] = pred[r, 6 + k]


def decode_end2end_cuda(pred, conf_thres: float, classes: tuple[int, ...] | None, max_det: int):
    """NMS-in-graph output (K, 6 + nm) float32 on the device -> kept rows, as postprocess.decode_end2end.

    Returns (xyxy (N, 4) float32, conf (N,) float32, cls (N,) int64) on the host and coefs (N, nm) on the device.
    """
    pred = as_device(pred, np.float32, "pred")
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise ValueError(f"pred must be (K, 6 + nm), got {pred.shape}")
    rows, count = cuda.device_array(max(min(pred.shape[0], max_det), 1), np.int64), cuda.to_device(np.zeros(1, np.int64))
    wanted = np.array(classes if classes is not None else [-1], np.int64)
    _select_rows[1, 1](pred, np.float32(conf_thres), cuda.to_device(wanted), classes is not None, max_det, rows, count)
    capacity = rows.shape[0]
    xyxy, conf = cuda.device_array((capacity, 4), np.float32), cuda.device_array(capacity, np.float32)
    cls, coefs = cuda.device_array(capacity, np.int64), cuda.device_array((capacity, pred.shape[1] - 6), np.float32)
    _launch(_gather_rows, capacity, pred, rows, count, xyxy, conf, cls, coefs)
    k = int(count.copy_to_host()[0])
    return xyxy.copy_to_host()[:k], conf.copy_to_host()[:k], cls.copy_to_host()[:k], coefs[:k]

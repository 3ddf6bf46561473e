"""Candidate filter, box decoding and greedy NMS on the GPU, with the CPU kernels' semantics (edgeseg/kernels/nms.py).

The candidates above the confidence threshold are few (tens to a few thousand of the 8400 anchors), so:
one thread per anchor appends its candidates to a list (order unknown, atomics), one thread per candidate finds
its rank by counting the candidates that come before it (score descending, then anchor and class: the CPU's stable
order), one thread per (candidate, 64 later candidates) sets the IoU > threshold bits, and one thread walks the
sorted list as the CPU does, reading those bits. Only counts and the kept detections go back to the host.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .jit import THREADS, as_device, device_function, kernel, larger, launch, mul, smaller
from .workspace import Workspace, fresh

WORD = 64  # candidates per suppression word


@device_function
def _usable(pred, a, score):
    """The CPU kernels' _usable: anchor a's box (x, y, w, h) and `score` all finite, w and h >= 0."""
    w, h = pred[2, a], pred[3, a]
    return (math.isfinite(score) and math.isfinite(pred[0, a]) and math.isfinite(pred[1, a]) and math.isfinite(w)
            and math.isfinite(h) and w >= 0 and h >= 0)


@kernel
def _candidates(pred, num_classes, conf_thres, allowed, multi_label, count, keys, scores):
    """Appends each candidate's key (anchor * num_classes + class: its place in the CPU's order, and both numbers
    in one) and score; count[0] counts them, count[1] the candidates dropped for a non-finite score or box or a
    negative box size, as on the CPU."""
    a = cuda.grid(1)
    if a >= pred.shape[1]:
        return
    if multi_label:
        for c in range(num_classes):
            score = pred[4 + c, a]
            if score > conf_thres and allowed[c]:
                if not _usable(pred, a, score):
                    cuda.atomic.add(count, 1, 1)
                    continue
                slot = cuda.atomic.add(count, 0, 1)
                keys[slot], scores[slot] = a * num_classes + c, score
        return
    best, best_class = pred[4, a], 0
    for c in range(1, num_classes):
        # strict: ties keep the first class, as torch.max does; a NaN score wins and stays, as on the CPU
        if best == best and (pred[4 + c, a] > best or pred[4 + c, a] != pred[4 + c, a]):
            best, best_class = pred[4 + c, a], c
    if best > conf_thres and allowed[best_class]:
        if not _usable(pred, a, best):
            cuda.atomic.add(count, 1, 1)
            return
        slot = cuda.atomic.add(count, 0, 1)
        keys[slot], scores[slot] = a * num_classes + best_class, best


@kernel
def _sort(pred, num_classes, keys, scores, count, limit, class_offset, ranked, boxes, shifted, areas, conf):
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
    a, c = key // num_classes, key % num_classes
    half_w, half_h = pred[2, a] / np.float32(2.0), pred[3, a] / np.float32(2.0)
    x1, y1, x2, y2 = pred[0, a] - half_w, pred[1, a] - half_h, pred[0, a] + half_w, pred[1, a] + half_h
    shift = mul(np.float32(c), class_offset)
    sx1, sy1, sx2, sy2 = x1 + shift, y1 + shift, x2 + shift, y2 + shift
    ranked[rank], conf[rank] = key, score
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
def _greedy(mask, max_det, removed, keep, count, ranked, boxes, conf, pred, num_classes, rows, coefs):
    """One block. Thread 0 walks the sorted candidates as the CPU kernel does; then the block gathers the kept
    ones: rows[p] = [x1, y1, x2, y2, conf, class] and coefs[p] of the p-th kept detection."""
    t = cuda.threadIdx.x
    if t == 0:
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
    cuda.syncthreads()
    for p in range(t, count[0], cuda.blockDim.x):
        i = keep[p]
        a, c = ranked[i] // num_classes, ranked[i] % num_classes
        for k in range(4):
            rows[p, k] = boxes[i, k]
        rows[p, 4], rows[p, 5] = conf[i], np.float32(c)
        for k in range(coefs.shape[1]):
            coefs[p, k] = pred[4 + num_classes + k, a]


def _kept(rows, coefs, k: int):
    """The k kept detections on the host (xyxy, conf, cls) and their coefficients on the device, from the packed
    rows the last kernel wrote: only the rows the count (read by the caller) names cross to the host."""
    if k == 0:  # no views of empty slices of the workspace: a fresh empty array allocates nothing
        return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                cuda.device_array((0, coefs.shape[1]), np.float32))
    host = rows[:k].copy_to_host()
    return np.ascontiguousarray(host[:, :4]), np.ascontiguousarray(host[:, 4]), host[:, 5].astype(np.int64), coefs[:k]


def decode_raw_cuda(pred, num_classes: int, conf_thres: float, allowed: np.ndarray, multi_label: bool,
                    iou_thres: float, max_det: int, class_offset: float, max_candidates: int,
                    workspace: Workspace | None = None):
    """Raw head output (4 + nc + nm, A) float32 on the device -> kept detections, as postprocess.decode_raw.

    allowed (nc,) bool host; class_offset: the class-aware NMS box offset (0 for agnostic NMS); max_candidates:
    the top candidates NMS looks at; workspace: where the scratch buffers come from (fresh ones if None). Returns
    (xyxy (N, 4) float32, conf (N,) float32, cls (N,) int64) on the host, coefs (N, nm) float32 on the device
    (a view of the workspace: valid until its next use), best score first, and the number of candidates dropped
    for a non-finite score or box or a negative box size (as kernels.nms.select_candidates).
    """
    ws = workspace if workspace is not None else fresh()
    pred = as_device(pred, np.float32, "pred")
    allowed = np.ascontiguousarray(allowed, dtype=np.bool_)
    if pred.ndim != 2 or pred.shape[0] < 4 + num_classes or allowed.shape != (num_classes,):
        raise ValueError(f"pred must be (4 + {num_classes} + nm, A) with allowed ({num_classes},), "
                         f"got {pred.shape} and {allowed.shape}")
    if max_det < 1 or max_candidates < 1:
        raise ValueError(f"max_det and max_candidates must be positive, got {max_det} and {max_candidates}")
    num_anchors, nm = pred.shape[1], pred.shape[0] - 4 - num_classes
    multi_label = bool(multi_label and num_classes > 1)
    capacity = num_anchors * (num_classes if multi_label else 1)
    count = ws.upload("count", np.zeros(2, np.int64))  # [candidates, dropped]
    keys, scores = ws.array("keys", capacity, np.int64), ws.array("scores", capacity, np.float32)
    d_allowed = ws.table(("allowed", allowed.tobytes()), lambda: cuda.to_device(allowed.view(np.uint8)))
    launch(_candidates, num_anchors, pred, num_classes, np.float32(conf_thres), d_allowed, multi_label, count, keys,
           scores)
    found, dropped = (int(v) for v in count.copy_to_host())  # the one wait before NMS: it sizes NMS's launches
    n = min(found, max_candidates)
    ranked, conf = ws.array("ranked", n, np.int64), ws.array("conf", n, np.float32)
    areas = ws.array("areas", n, np.float32)
    boxes, shifted = ws.array("boxes", (n, 4), np.float32), ws.array("shifted", (n, 4), np.float32)
    launch(_sort, found, pred, num_classes, keys, scores, found, n, np.float32(class_offset), ranked, boxes, shifted,
           areas, conf)
    words = (n + WORD - 1) // WORD
    mask = ws.array("mask", (n, words), np.uint64)
    launch(_overlaps, n * words, shifted, areas, np.float64(iou_thres), mask)
    capacity = min(n, max_det)
    rows, coefs = ws.array("rows", (capacity, 6), np.float32), ws.array("coefs", (capacity, nm), np.float32)
    kept = ws.array("kept", 1, np.int64)
    if not n:
        return (*_kept(rows, coefs, 0), dropped)
    _greedy[1, THREADS](mask, max_det, ws.array("removed", words, np.uint64), ws.array("keep", capacity, np.int64),
                        kept, ranked, boxes, conf, pred, num_classes, rows, coefs)
    return (*_kept(rows, coefs, int(kept.copy_to_host()[0])), dropped)


@device_function
def _usable_row(pred, r):
    """Row r's first six values (x1, y1, x2, y2, conf, class) all finite, x2 >= x1 and y2 >= y1, as on the CPU."""
    for k in range(6):
        if not math.isfinite(pred[r, k]):
            return False
    return pred[r, 2] >= pred[r, 0] and pred[r, 3] >= pred[r, 1]


@kernel
def _select_rows(pred, conf_thres, classes, filter_classes, max_det, rows, count, out, coefs):
    """One block. Thread 0 picks the first max_det usable rows above conf_thres (and of the allowed classes), in row
    order, and counts the unusable ones among all such rows (count[1]); then the block gathers the picked ones:
    out[p] = [x1, y1, x2, y2, conf, class] and coefs[p]."""
    t = cuda.threadIdx.x
    if t == 0:
        kept, dropped = 0, 0
        for r in range(pred.shape[0]):
            if not pred[r, 4] > conf_thres:
                continue
            if filter_classes:
                # a non-finite class is class -1, as on the CPU (the row is unusable and dropped below)
                c, allowed = (np.int64(pred[r, 5]) if math.isfinite(pred[r, 5]) else np.int64(-1)), False
                for k in range(classes.shape[0]):
                    if classes[k] == c:
                        allowed = True
                if not allowed:
                    continue
            if not _usable_row(pred, r):
                dropped += 1
            elif kept < max_det:  # the rows after max_det are still walked: the dropped count covers every row
                rows[kept] = r
                kept += 1
        count[0], count[1] = kept, dropped
    cuda.syncthreads()
    for p in range(t, count[0], cuda.blockDim.x):
        r = rows[p]
        for k in range(6):
            out[p, k] = pred[r, k]
        for k in range(coefs.shape[1]):
            coefs[p, k] = pred[r, 6 + k]


def decode_end2end_cuda(pred, conf_thres: float, classes: tuple[int, ...] | None, max_det: int,
                        workspace: Workspace | None = None):
    """NMS-in-graph output (K, 6 + nm) float32 on the device -> kept rows, as postprocess.decode_end2end.

    Returns (xyxy (N, 4) float32, conf (N,) float32, cls (N,) int64) on the host, coefs (N, nm) on the device
    (a view of `workspace`, fresh if None) and the number of rows dropped for a non-finite value among their first
    six or x2 < x1 or y2 < y1.
    """
    ws = workspace if workspace is not None else fresh()
    pred = as_device(pred, np.float32, "pred")
    if pred.ndim != 2 or pred.shape[1] < 6:
        raise ValueError(f"pred must be (K, 6 + nm), got {pred.shape}")
    capacity = min(pred.shape[0], max_det)
    wanted = np.array(classes if classes is not None else [-1], np.int64)
    d_wanted = ws.table(("classes", wanted.tobytes()), lambda: cuda.to_device(wanted))
    rows = ws.array("rows", (capacity, 6), np.float32)
    coefs = ws.array("coefs", (capacity, pred.shape[1] - 6), np.float32)
    count = ws.array("kept", 2, np.int64)  # [kept, dropped]
    if not capacity:  # no rows (max_det is at least 1)
        return (*_kept(rows, coefs, 0), 0)
    _select_rows[1, THREADS](pred, np.float32(conf_thres), d_wanted, classes is not None, max_det,
                             ws.array("picked", capacity, np.int64), count, rows, coefs)
    kept, dropped = (int(v) for v in count.copy_to_host())
    return (*_kept(rows, coefs, kept), dropped)

"""Slow, obvious NumPy versions of edgeseg's kernels, for the kernel tests to compare against.

Written for clarity, not speed: whole arrays, the textbook formula, float32 where the kernels use float32.
"""

from __future__ import annotations

import math

import numpy as np


def hwc_bgr_to_chw_rgb(image: np.ndarray, out_shape: tuple[int, int], top: int, left: int,
                       pad_value: int = 114) -> np.ndarray:
    """(h, w, 3) uint8 BGR placed at (top, left) in a (3, H, W) float32 RGB canvas of pad_value / 255."""
    out = np.full((3, *out_shape), np.float32(pad_value) / np.float32(255), np.float32)
    h, w = image.shape[:2]
    rgb = image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    out[:, top : top + h, left : left + w] = rgb
    return out


def select_candidates(pred, num_classes, conf_thres, allowed, multi_label=False):
    """(anchors, classes, scores, dropped) of candidates, in anchor order (then class order with multi_label).

    A candidate's score must beat conf_thres (the best class's: np.argmax picks the first NaN, so an anchor with a
    NaN class score has none). Candidates with an infinite score, or a box with a non-finite value or a negative
    width or height, are dropped and counted.
    """
    pred = np.asarray(pred, np.float32)
    scores = pred[4 : 4 + num_classes]  # (nc, A)
    thres = np.float32(conf_thres)
    with np.errstate(invalid="ignore"):
        box_ok = np.isfinite(pred[:4]).all(axis=0) & (pred[2] >= 0) & (pred[3] >= 0)  # (A,)
    anchors, classes, confs, dropped = [], [], [], 0
    for a in range(scores.shape[1]):
        if multi_label:
            picks = [c for c in range(num_classes) if scores[c, a] > thres and allowed[c]]
        else:
            best = int(np.argmax(scores[:, a]))  # first maximum on ties, first NaN if any
            picks = [best] if scores[best, a] > thres and allowed[best] else []
        for c in picks:
            if not (box_ok[a] and np.isfinite(scores[c, a])):
                dropped += 1
                continue
            anchors.append(a)
            classes.append(c)
            confs.append(scores[c, a])
    return np.array(anchors, np.int64), np.array(classes, np.int64), np.array(confs, np.float32), dropped


def end2end_rows(pred, conf_thres, classes=None, max_det=300):
    """(kept row indices, dropped) of an NMS-in-graph output (K, 6 + nm): rows above conf_thres of the given classes,
    minus those with a non-finite value among their first six or x2 < x1 or y2 < y1 (counted), the first max_det."""
    kept, dropped = [], 0
    for r, row in enumerate(np.asarray(pred, np.float32)):
        if not row[4] > np.float32(conf_thres):
            continue
        cls = int(row[5]) if np.isfinite(row[5]) else -1
        if classes is not None and cls not in classes:
            continue
        if np.isfinite(row[:6]).all() and row[2] >= row[0] and row[3] >= row[1]:
            kept.append(r)
        else:
            dropped += 1
    return np.array(kept[:max_det], np.int64), dropped


def xywh_to_xyxy(pred, anchors):
    """Corner boxes (n, 4) float32 of the given anchors' centre-size boxes."""
    xywh = np.asarray(pred, np.float32)[:4, anchors].T
    half = xywh[:, 2:] / np.float32(2)
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1).astype(np.float32)


def iou_one_to_many(box, boxes):
    """IoU (n,) float32 of one xyxy box with many, computed in float32 (0/0 gives NaN, which suppresses nothing)."""
    w = np.maximum(np.float32(0), np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    h = np.maximum(np.float32(0), np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area + areas - inter)


def nms(boxes, scores, iou_thres, max_det=None):
    """Greedy NMS: take the best remaining box, drop every box with IoU > iou_thres with it, repeat."""
    boxes = np.asarray(boxes, np.float32)
    remaining = list(np.argsort(-np.asarray(scores, np.float32), kind="stable"))
    keep = []
    while remaining:
        i = remaining.pop(0)
        keep.append(i)
        if remaining:
            iou = iou_one_to_many(boxes[i], boxes[remaining])
            # the float32 IoU is compared with the threshold as a double, as torchvision does (float32(0.3) > 0.3)
            remaining = [j for j, v in zip(remaining, iou.astype(np.float64), strict=True) if not v > float(iou_thres)]
    keep = np.array(keep, np.int64)
    return keep if max_det is None else keep[:max_det]


def linear_taps(out_size: int, in_size: int, scale: np.float32):
    """PyTorch's bilinear align_corners=False rule: for each output index, (index0, index1, weight1)."""
    src = scale * (np.arange(out_size).astype(np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    return i0, i1, w1


def resize_bilinear(src: np.ndarray, out_shape: tuple[int, int],
                    scale: tuple[float, float] | None = None) -> np.ndarray:
    """F.interpolate(mode='bilinear', align_corners=False) of one (h, w) float32 plane.

    scale (sy, sx): input pixels per output pixel; default in_size / out_size. Blends x first, then y.
    """
    (h, w), (oh, ow) = src.shape, out_shape
    sy, sx = scale if scale is not None else (np.float32(h) / np.float32(oh), np.float32(w) / np.float32(ow))
    r0, r1, wy1 = linear_taps(oh, h, np.float32(sy))
    c0, c1, wx1 = linear_taps(ow, w, np.float32(sx))
    wy1, wx1 = wy1[:, None], wx1[None, :]
    wy0, wx0 = np.float32(1) - wy1, np.float32(1) - wx1
    top = src[r0][:, c0] * wx0 + src[r0][:, c1] * wx1
    bottom = src[r1][:, c0] * wx0 + src[r1][:, c1] * wx1
    return (top * wy0 + bottom * wy1).astype(np.float32)


def mask_geometry(proto_shape, image_shape):
    """(upsample, (top, left, bottom, right)) written out as Ultralytics' process_mask_native + scale_masks do."""
    mh, mw = proto_shape
    h, w = image_shape
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))
    f = 4 // math.gcd(4, pad | pad // 2)
    im1_h, im1_w = mh * f, mw * f
    gain = min(im1_h / h, im1_w / w)
    pad_w, pad_h = (im1_w - max(round(w * gain), 1)) / 2, (im1_h - max(round(h * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    return f, (top, left, top + max(round(h * gain), 1), left + max(round(w * gain), 1))


def masks_full_frame(protos, coefs, boxes, image_shape):
    """Binary masks (N, H, W) uint8 computed over the whole frame, then cut to the float xyxy boxes.

    logits = sum_k coef_k * proto_k (in k order, float32), upsample by f, crop the letterbox padding,
    resize to the image, keep columns x1 <= c < x2 and rows y1 <= r < y2, threshold at 0.
    """
    protos = np.asarray(protos, np.float32)
    nm, mh, mw = protos.shape
    h, w = image_shape
    f, (top, left, bottom, right) = mask_geometry((mh, mw), image_shape)
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    out = np.zeros((len(coefs), h, w), np.uint8)
    for i, coef in enumerate(np.asarray(coefs, np.float32)):
        logits = np.zeros((mh, mw), np.float32)
        for k in range(nm):
            logits += coef[k] * protos[k]
        if f > 1:
            inv = np.float32(1.0 / f)
            logits = resize_bilinear(logits, (mh * f, mw * f), scale=(inv, inv))
        values = resize_bilinear(logits[top:bottom, left:right], (h, w))
        x1, y1, x2, y2 = np.asarray(boxes[i], np.float32)
        inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
        out[i] = (values > 0) & inside
    return out


def _edges_top_down(polygons, number):
    """(x_top, y_top, x_bottom, y_bottom, winding) of every non-horizontal edge, the closing ones included, with
    coordinates converted by `number` (float or int); winding is +1 for an edge that goes down, -1 up."""
    for polygon in polygons:
        vertices = np.asarray(polygon).reshape(-1, 2)
        for (xa, ya), (xb, yb) in zip(np.roll(vertices, 1, axis=0), vertices, strict=True):
            xa, ya, xb, yb = number(xa), number(ya), number(xb), number(yb)
            if ya < yb:
                yield xa, ya, xb, yb, 1
            elif ya > yb:
                yield xb, yb, xa, ya, -1


def fill_polygons_centres(polygons, shape, rule="evenodd", offset=(0, 0)):
    """(H, W) uint8: pixel (x, y) is 1 when the point (x0 + x, y0 + y) is inside the float polygons.

    An edge crosses row y when y_top <= y < y_bottom, at x_top + (y - y_top) * slope (float64, the kernel's formula).
    The point is inside when the crossings at or left of it are odd in number (evenodd) or their windings (+1 for an
    edge going down, -1 up) do not sum to zero (nonzero).
    """
    h, w = shape
    rows = (offset[1] + np.arange(h, dtype=np.float64))[:, None]
    cols = (offset[0] + np.arange(w, dtype=np.float64))[None, :]
    crossed = np.zeros(shape, np.int64)
    for xt, yt, xb, yb, winding in _edges_top_down(polygons, float):
        crossing = xt + (rows - yt) * ((xb - xt) / (yb - yt))
        crossed += ((yt <= rows) & (rows < yb) & (crossing <= cols)) * (winding if rule == "nonzero" else 1)
    inside = crossed % 2 == 1 if rule == "evenodd" else crossed != 0
    return inside.astype(np.uint8)


def fill_polygons_fixed_point(polygons, shape, rule="evenodd", offset=(0, 0)):
    """(H, W) uint8 interior of integer polygons as OpenCV's fillPoly scans it (its outline lines not included).

    An edge from its top (xt, yt) to its bottom (xb, yb) crosses rows yt <= y < yb at
    X = xt * 2**16 + (y - yt) * trunc((xb - xt) * 2**16 / (yb - yt)). Pixel x is 1 when a crossing is exactly at
    x * 2**16, or when the crossings left of it are odd in number (evenodd) / have a non-zero winding sum (nonzero).
    """
    h, w = shape
    rows = offset[1] + np.arange(h, dtype=np.int64)[:, None]
    centres = (offset[0] + np.arange(w, dtype=np.int64)[None, :]) * 65536
    left, on = np.zeros(shape, np.int64), np.zeros(shape, bool)
    for xt, yt, xb, yb, winding in _edges_top_down(polygons, int):
        slope = abs((xb - xt) * 65536) // (yb - yt) * (1 if xb >= xt else -1)  # C division: towards zero
        crossing = xt * 65536 + (rows - yt) * slope
        spans = (yt <= rows) & (rows < yb)
        left += (spans & (crossing < centres)) * (winding if rule == "nonzero" else 1)
        on |= spans & (crossing == centres)
    inside = left % 2 == 1 if rule == "evenodd" else left != 0
    return (inside | on).astype(np.uint8)


def cut_out(frame, mask, origin, region, mode):
    """One object cut out of frame over region (x0, y0, x1, y1), built at full frame size and then cropped."""
    h, w = frame.shape[:2]
    full = np.zeros((h, w), bool)
    x0, y0 = int(origin[0]), int(origin[1])
    full[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask != 0
    rx0, ry0, rx1, ry1 = region
    inside = full[ry0:ry1, rx0:rx1]
    if mode == "mask":
        return inside.astype(np.uint8) * 255
    if mode == "black":
        return np.where(inside[:, :, None], frame[ry0:ry1, rx0:rx1], 0).astype(np.uint8)
    return np.concatenate([frame[ry0:ry1, rx0:rx1], inside[:, :, None].astype(np.uint8) * 255], axis=2)


def blend_masks(frame, crops, origins, colors, alpha):
    """A copy of frame with each colour blended over its mask, objects in order, one full-frame pass per object.

    alpha is snapped to a = floor(alpha * 256 + 0.5) / 256 and each covered channel becomes
    floor(frame * (1 - a) + color * a + 0.5); float64 holds every step of that exactly.
    """
    out = frame.astype(np.float64)
    a = np.floor(alpha * 256 + 0.5) / 256
    for crop, (x0, y0), color in zip(crops, origins, colors, strict=True):
        inside = np.zeros(frame.shape[:2], bool)
        inside[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = np.asarray(crop) != 0
        out[inside] = np.floor(out[inside] * (1 - a) + np.asarray(color, np.float64) * a + 0.5)
    return out.astype(np.uint8)

"""Network outputs of one image -> Boxes and Masks in source-image pixels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..config import PredictConfig
from ..inputs.letterbox import Letterbox, box_pixels, mask_geometry
from ..kernels.masks import masks_in_boxes
from ..kernels.nms import nms, select_candidates, xywh_to_xyxy
from ..results import Boxes, Masks

# Ultralytics' non_max_suppression constants: candidates kept before NMS, and the per-class box
# offset that keeps classes apart in class-aware NMS.
MAX_NMS_CANDIDATES = 30000
MAX_WH = 7680

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Kept detections in network-input pixels: xyxy (N, 4) float32, conf (N,), cls (N,) int64, coefs (N, nm)."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    coefs: np.ndarray


def allowed_classes(num_classes: int, classes: tuple[int, ...] | None) -> np.ndarray:
    """(nc,) bool: True for the classes to keep."""
    if classes is None:
        return np.ones(num_classes, np.bool_)
    allowed = np.zeros(num_classes, np.bool_)
    allowed[[c for c in classes if c < num_classes]] = True
    return allowed


def log_dropped(dropped: int) -> None:
    """The debug line for candidates decode dropped because a box or score was not finite (an FP16 model that
    overflows gives inf) or a box had a negative size: shared by the CPU and the GPU path."""
    if dropped:
        log.debug("dropped %d candidates with non-finite or negative boxes", dropped)


def decode_raw(pred: np.ndarray, num_classes: int, cfg: PredictConfig) -> Detections:
    """Raw head output (4 + nc + nm, A) -> detections after confidence filter and NMS.

    Ultralytics' non_max_suppression: best class (or every class with multi_label) above conf,
    the `classes` filter, the top MAX_NMS_CANDIDATES by score, class-aware NMS (boxes offset by
    class * MAX_WH) unless agnostic, then the first max_det. Unlike it, candidates with a non-finite
    score, or a box (x, y, w, h) with a non-finite value or w or h < 0, are dropped first (and logged).
    """
    anchors, cls, conf, dropped = select_candidates(pred, num_classes, cfg.conf,
                                                    allowed_classes(num_classes, cfg.classes),
                                                    cfg.multi_label and num_classes > 1)
    log_dropped(dropped)
    if len(conf) > MAX_NMS_CANDIDATES:
        top = np.argsort(-conf, kind="stable")[:MAX_NMS_CANDIDATES]
        anchors, cls, conf = anchors[top], cls[top], conf[top]
    xyxy = xywh_to_xyxy(pred, anchors)
    offset = np.float32(0 if cfg.agnostic_nms else MAX_WH)
    keep = nms(xyxy + (cls.astype(np.float32) * offset)[:, None], conf, cfg.iou, cfg.max_det)
    coefs = pred[4 + num_classes :, anchors[keep]].T
    return Detections(xyxy[keep], conf[keep], cls[keep], np.ascontiguousarray(coefs, dtype=np.float32))


def decode_end2end(pred: np.ndarray, cfg: PredictConfig) -> Detections:
    """NMS-in-graph output (K, 6 + nm) rows [x1, y1, x2, y2, conf, cls, coefs...] -> kept detections.

    As Ultralytics: rows with conf above the threshold, the `classes` filter, the first max_det. Unlike it, rows
    with a non-finite value among their first six or with x2 < x1 or y2 < y1 are dropped first (and logged).
    """
    pred = np.asarray(pred, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # a NaN class (dropped below) is class -1 here, not a cast warning
        cls = np.where(np.isfinite(pred[:, 5]), pred[:, 5], np.float32(-1)).astype(np.int64)
        usable = np.isfinite(pred[:, :6]).all(axis=1) & (pred[:, 2] >= pred[:, 0]) & (pred[:, 3] >= pred[:, 1])
    keep = pred[:, 4] > np.float32(cfg.conf)
    if cfg.classes is not None:
        keep &= np.isin(cls, cfg.classes)
    log_dropped(int(np.count_nonzero(keep & ~usable)))
    rows = np.flatnonzero(keep & usable)[: cfg.max_det]
    return Detections(np.ascontiguousarray(pred[rows, :4]), pred[rows, 4].copy(), cls[rows],
                      np.ascontiguousarray(pred[rows, 6:]))


def to_source(det: Detections, protos: np.ndarray, letterbox: Letterbox) -> tuple[Boxes, Masks]:
    """Boxes scaled to the source image and masks at its resolution, each computed inside its box only.

    As Ultralytics with retina_masks=True, objects whose mask is empty are dropped.
    """
    shape = letterbox.src_shape
    xyxy = letterbox.boxes_to_source(det.xyxy)
    bounds = box_pixels(xyxy, shape)
    upsample, crop = mask_geometry(protos.shape[1:], shape)
    flat, offsets = masks_in_boxes(protos, det.coefs, bounds, upsample, crop, shape)
    return _with_masks(det, xyxy, bounds, flat, offsets, shape)


def to_input_frame(det: Detections, protos: np.ndarray, letterbox: Letterbox) -> tuple[Boxes, Masks]:
    """Boxes scaled to the source image, masks left in the network's input frame: Ultralytics' retina_masks=False
    (process_mask with upsample: the prototypes resized bilinearly to the input, cut to the input-frame box, > 0),
    each computed inside its box only. As there, objects whose mask is empty are dropped."""
    frame = letterbox.dst_shape
    bounds = box_pixels(det.xyxy, frame)
    flat, offsets = masks_in_boxes(protos, det.coefs, bounds, 1, (0, 0, *protos.shape[1:]), frame)
    return _with_masks(det, letterbox.boxes_to_source(det.xyxy), bounds, flat, offsets, letterbox.src_shape, frame)


def _with_masks(det: Detections, xyxy: np.ndarray, bounds: np.ndarray, flat: np.ndarray, offsets: np.ndarray,
                shape: tuple[int, int], input_shape: tuple[int, int] | None = None) -> tuple[Boxes, Masks]:
    """Boxes (`xyxy`, source pixels) and Masks of the objects whose mask, laid out in `flat` over `bounds` in the
    masks' frame (the source, or `input_shape`), is not empty: Ultralytics drops the others."""
    crops = [flat[offsets[k] : offsets[k + 1]].reshape(bounds[k, 3] - bounds[k, 1], bounds[k, 2] - bounds[k, 0])
             for k in range(len(bounds))]
    keep = np.array([c.size > 0 and bool(c.any()) for c in crops], np.bool_)
    masks = Masks(tuple(c for c, k in zip(crops, keep, strict=True) if k), bounds[keep][:, :2].copy(), shape,
                  input_shape)
    boxes = Boxes(xyxy[keep], det.conf[keep].astype(np.float32), det.cls[keep].astype(np.int64), shape)
    return boxes, masks

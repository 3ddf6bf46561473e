"""Results to and from supervision's Detections (pip install "edgeseg[supervision]"): what
sv.Detections.from_ultralytics gives for the same image, so supervision's annotators, trackers and zones take edgeseg
results as they take Ultralytics' ones. supervision is imported only here, when called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..inputs.letterbox import box_pixels
from ..results import Boxes, Masks, Results


def _supervision() -> Any:
    try:
        import supervision
    except ImportError:
        raise ConfigError('supervision is not installed: pip install "edgeseg[supervision]"') from None
    return supervision


def to_supervision(result: Results) -> Any:
    """supervision.Detections: xyxy (N, 4) float32, mask (N, H, W) bool (dense: supervision's annotators read full
    frames), confidence (N,) float32, class_id (N,) int64, tracker_id (N,) int64 or None, data["class_name"]."""
    sv = _supervision()
    result.require_host_masks("to_supervision")
    boxes = result.boxes
    names = np.array([result.names.get(int(c), str(c)) for c in boxes.cls], dtype=str)
    mask = result.masks.to_source().data.astype(bool)  # type: ignore[union-attr]  # host masks: checked above
    return sv.Detections(xyxy=boxes.xyxy.copy(), mask=mask, confidence=boxes.conf.copy(),
                         class_id=boxes.cls.copy(), tracker_id=None if boxes.id is None else boxes.id.copy(),
                         data={"class_name": names})


def from_supervision(detections: Any, orig_img: np.ndarray, names: dict[int, str],
                     path: str | Path | None = None) -> Results:
    """Results of supervision.Detections on `orig_img` ((H, W, 3) uint8 BGR). Each mask is kept over the pixels of
    its box and of its own extent together (nothing is lost when a mask reaches past its box). ConfigError when the
    detections lack masks, confidences or class IDs, or their masks are not the image's size."""
    missing = [name for name in ("mask", "confidence", "class_id") if getattr(detections, name, None) is None]
    if missing:
        raise ConfigError(f"edgeseg results need detections with {', '.join(missing)}, and these have none")
    if not isinstance(orig_img, np.ndarray) or orig_img.dtype != np.uint8 or orig_img.ndim != 3 \
            or orig_img.shape[2] != 3:
        raise ConfigError(f"orig_img must be (H, W, 3) uint8 BGR, got {getattr(orig_img, 'shape', type(orig_img))}")
    shape = orig_img.shape[:2]
    dense = np.asarray(detections.mask)  # a CompactMask turns dense here too
    xyxy = np.asarray(detections.xyxy, np.float32).reshape(-1, 4)
    if dense.shape != (len(xyxy), *shape):
        raise ConfigError(f"detections' masks are {dense.shape}, but {len(xyxy)} masks of the {shape[1]}x{shape[0]} "
                          "image are needed")
    bounds = box_pixels(xyxy, shape)
    crops, origins = [], np.zeros((len(xyxy), 2), np.int64)
    for k, mask in enumerate(dense):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        x0, y0, x1, y1 = (int(v) for v in bounds[k])
        if len(rows):  # widen the box to the mask's extent
            x0, y0 = min(x0, int(cols[0])), min(y0, int(rows[0]))
            x1, y1 = max(x1, int(cols[-1]) + 1), max(y1, int(rows[-1]) + 1)
        crops.append((mask[y0:y1, x0:x1] != 0).astype(np.uint8))
        origins[k] = x0, y0
    ids = getattr(detections, "tracker_id", None)
    boxes = Boxes(xyxy, np.asarray(detections.confidence, np.float32), np.asarray(detections.class_id, np.int64),
                  shape, None if ids is None else np.asarray(ids, np.int64))
    return Results(orig_img, None if path is None else str(path), dict(names), boxes, Masks(tuple(crops), origins,
                                                                                              shape))

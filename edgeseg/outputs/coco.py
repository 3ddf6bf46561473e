"""COCO results: run-length encoding computed from a box-sized mask crop without building the full frame, and the
results records of one image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..results import Results


def rle_counts(crop: np.ndarray, origin: tuple[int, int] | np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Uncompressed COCO RLE counts (alternating zeros, ones; column-major) of a mask crop placed at origin."""
    h, w = image_shape
    x0, y0 = int(origin[0]), int(origin[1])
    ch = crop.shape[0]
    # pad each crop column with a 0 on both ends, so every run of ones starts and ends inside the column
    cols = np.zeros((crop.shape[1], ch + 2), np.int8)
    cols[:, 1:-1] = crop.T != 0
    diff = np.diff(cols, axis=1)
    col_s, row_s = np.nonzero(diff == 1)
    col_e, row_e = np.nonzero(diff == -1)
    starts = (x0 + col_s) * h + y0 + row_s
    ends = (x0 + col_e) * h + y0 + row_e
    if len(starts) > 1:  # a run ending at a column's last row and starting the next column's first is one run
        joined = ends[:-1] == starts[1:]
        if joined.any():
            starts = np.concatenate([starts[:1], starts[1:][~joined]])
            ends = np.concatenate([ends[:-1][~joined], ends[-1:]])
    edges = np.empty(2 * len(starts) + 2, np.int64)
    edges[0], edges[-1] = 0, h * w
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    return np.diff(edges)


def compress_counts(counts: np.ndarray) -> str:
    """pycocotools' compressed string form of RLE counts (LEB128-like, 5 bits a character)."""
    chars = []
    for i, x in enumerate(counts.tolist()):
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def encode_rle(crop: np.ndarray, origin, image_shape: tuple[int, int]) -> dict:
    """{'size': [H, W], 'counts': str}, as pycocotools.mask.encode gives for the full-frame mask."""
    return {"size": [int(image_shape[0]), int(image_shape[1])],
            "counts": compress_counts(rle_counts(crop, origin, image_shape))}


def to_coco(result: Results, image_id: int | str | None = None,
            category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO results of one image: one dict per object with image_id, category_id, bbox [x, y, w, h], score and
    segmentation as compressed RLE. `image_id` defaults to the file's stem (an int when it is one) or 0;
    `category_ids[cls]` maps classes to dataset ids (default: cls)."""
    result.require_host_masks("to_coco")
    if image_id is None:
        image_id = Path(result.path).stem if result.path else 0
        image_id = int(image_id) if isinstance(image_id, str) and image_id.isdigit() else image_id
    xywh = result.boxes.xyxy.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    out = []
    for k in range(len(result)):
        cls = int(result.boxes.cls[k])
        out.append({
            "image_id": image_id,
            "category_id": int(category_ids[cls]) if category_ids is not None else cls,
            "bbox": [round(float(v), 3) for v in xywh[k]],
            "score": round(float(result.boxes.conf[k]), 5),
            "segmentation": encode_rle(result.masks.crops[k], result.masks.origins[k], result.orig_shape),
        })
    return out

"""Ultralytics-shaped text records of one result: summary() dicts, their JSON, YOLO-seg label lines (save_txt) and
the log string (verbose). Each follows ultralytics/engine/results.py 8.4 down to its rounding, so code that parses
Ultralytics' output reads edgeseg's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, OutputError
from .files import exists, write_bytes

if TYPE_CHECKING:
    from ..results import Results


def _name(result: Results, cls: int) -> str:
    return result.names.get(cls, str(cls))


def summary(result: Results, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
    """One dict per object: name, class, confidence, box {x1, y1, x2, y2}, track_id (when tracked) and segments
    {x: [...], y: [...]} (masks.xy), rounded to `decimals`; divided by the image width and height with normalize."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise ConfigError(f"decimals must be an integer, got {decimals!r}")
    result.require_host_masks("summary")
    # Ultralytics' arithmetic, type for type: boxes as Python floats over int sizes, outlines as float32 arrays
    # divided by an int (float32 under NumPy 2), then widened and rounded; other steps would round differently
    h, w = (int(result.orig_shape[0]), int(result.orig_shape[1])) if normalize else (1, 1)
    boxes = result.boxes
    xy = result.masks.xy
    records = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.xyxy.tolist()):
        cls = int(boxes.cls[i])
        record: dict[str, Any] = {
            "name": _name(result, cls), "class": cls, "confidence": round(float(boxes.conf[i]), decimals),
            "box": {"x1": round(x1 / w, decimals), "y1": round(y1 / h, decimals), "x2": round(x2 / w, decimals),
                    "y2": round(y2 / h, decimals)},
        }
        if boxes.id is not None:
            record["track_id"] = int(boxes.id[i])
        record["segments"] = {"x": (xy[i][:, 0] / w).astype(float).round(decimals).tolist(),
                              "y": (xy[i][:, 1] / h).astype(float).round(decimals).tolist()}
        records.append(record)
    return records


def to_json(result: Results, normalize: bool = False, decimals: int = 5) -> str:
    """summary() as compact JSON (a list of records; "[]" without objects)."""
    return json.dumps(summary(result, normalize, decimals), separators=(",", ":"))


def label_lines(result: Results, save_conf: bool = False) -> list[str]:
    """YOLO-seg label lines: class, then the outline's normalised x y pairs (masks.xyn), then the confidence when
    asked and the track ID when tracked, each number as "%g". Objects whose outline has fewer than 3 points are left
    out (a shorter row is no polygon, and label loaders refuse it)."""
    result.require_host_masks("save_txt")
    boxes, lines = result.boxes, []
    for i, polygon in enumerate(result.masks.xyn):
        if len(polygon) < 3:
            continue
        row = (int(boxes.cls[i]), *polygon.reshape(-1).tolist())
        row += (float(boxes.conf[i]),) * bool(save_conf) + (() if boxes.id is None else (int(boxes.id[i]),))
        lines.append(("%g " * len(row)).rstrip() % row)
    return lines


def save_txt(result: Results, path: str | Path, save_conf: bool = False) -> Path:
    """Appends label_lines() to the text file `path` (created with its folder if needed), as Ultralytics does: one
    file can collect several calls. The file is rewritten whole, atomically; nothing is written without lines."""
    path = Path(path)
    lines = label_lines(result, save_conf)
    if lines:
        try:
            before = path.read_bytes() if exists(path) else b""
        except OSError as e:
            raise OutputError(f"cannot read {path} to append to it: {e.strerror or e}") from None
        write_bytes(path, before + "".join(f"{line}\n" for line in lines).encode())
    return path


def verbose(result: Results) -> str:
    """The log string Ultralytics prints for an image: "1 circle, 2 squares, " (counts by class, in class order,
    plural "s" added), or "(no detections), "."""
    if len(result) == 0:
        return "(no detections), "
    classes, counts = np.unique(result.boxes.cls, return_counts=True)
    return "".join(f"{n} {_name(result, int(c))}{'s' * (n > 1)}, " for c, n in zip(classes, counts.tolist(),
                                                                                  strict=True))


def to_records(result: Results, frame: int | None = None) -> list[dict[str, Any]]:
    """Flat JSON- and Parquet-ready rows, one per object: source (the image or video path, or null), frame (a video
    frame's index, or null), object (its index in the result), x1, y1, x2, y2 (source pixels), score, class_id,
    class_name, track_id and track_class (null unless tracked / voted), mask_height, mask_width and mask_counts (the
    object's mask at source resolution as COCO compressed RLE, pycocotools' string). Every value a plain Python
    str, int, float or None, so any table format reads them back."""
    from .coco import encode_rle

    result.require_host_masks("to_records")
    boxes, masks = result.boxes, result.masks.to_source()  # type: ignore[union-attr]  # host masks: checked above
    h, w = result.orig_shape
    rows = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.xyxy.tolist()):
        cls = int(boxes.cls[i])
        rows.append({
            "source": result.path, "frame": None if frame is None else int(frame), "object": i,
            "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": float(boxes.conf[i]), "class_id": cls,
            "class_name": _name(result, cls),
            "track_id": None if boxes.id is None else int(boxes.id[i]),
            "track_class": None if boxes.track_cls is None else int(boxes.track_cls[i]),
            "mask_height": int(h), "mask_width": int(w),
            "mask_counts": encode_rle(masks.crops[i], masks.origins[i], (h, w))["counts"],
        })
    return rows

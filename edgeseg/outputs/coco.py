"""COCO results: run-length encoding computed from a box-sized mask crop without building the full frame, and the
results records of one image."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError

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


def stable_id(name: str) -> int:
    """An integer image id for a file name that is not a number: the same for the same name in every run (CRC-32 of
    the name, 31 bits, as COCO tools keep ids in signed 32-bit integers)."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF


def to_coco(result: Results, image_id: int | None = None,
            category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO results of one image: one dict per object with image_id, category_id, bbox [x, y, w, h], score,
    segmentation as compressed RLE and the image's file_name. COCO wants an integer `image_id`: by default the
    file's stem when it is an integer (as Ultralytics does), else stable_id(file name); `image_ids` gives the ids
    of a whole run or of a COCO ground-truth file. `category_ids[cls]` maps classes to dataset ids (default: cls)."""
    result.require_host_masks("to_coco")
    name = Path(result.path).name if result.path else "image.jpg"
    if image_id is None:
        stem = Path(name).stem
        image_id = int(stem) if stem.isdigit() else stable_id(name)
    xywh = result.boxes.xyxy.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    masks = result.masks.to_source()  # type: ignore[union-attr]  # host masks: checked above
    out = []
    for k in range(len(result)):
        cls = int(result.boxes.cls[k])
        out.append({
            "image_id": image_id,
            "category_id": int(category_ids[cls]) if category_ids is not None else cls,
            "bbox": [round(float(v), 3) for v in xywh[k]],
            "score": round(float(result.boxes.conf[k]), 5),
            "segmentation": encode_rle(masks.crops[k], masks.origins[k], result.orig_shape),
            "file_name": name,
        })
    return out


def image_ids(paths: Sequence[str], annotations: str | Path | None = None) -> dict[str, int]:
    """The integer COCO image id of each input file (by path): from a COCO ground-truth file's `images` (matched by
    file name), else every file's stem when all are distinct integers (as Ultralytics names COCO's images), else
    0, 1, 2, ... in input order. ConfigError for an unreadable ground-truth file or an input it does not list."""
    if annotations is not None:
        by_name = _ground_truth_ids(Path(annotations))
        missing = [p for p in paths if Path(p).name not in by_name]
        if missing:
            raise ConfigError(f"{len(missing)} of the {len(paths)} images are not in {annotations} (e.g. "
                              f"{Path(missing[0]).name}): give the images of that dataset, or leave out --coco-ids")
        return {p: by_name[Path(p).name] for p in paths}
    stems = [Path(p).stem for p in paths]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return {p: int(s) for p, s in zip(paths, stems, strict=True)}
    return {p: k for k, p in enumerate(paths)}


def _ground_truth_ids(path: Path) -> dict[str, int]:
    try:
        images = json.loads(path.read_text(encoding="utf-8"))["images"]
        return {Path(str(im["file_name"])).name: int(im["id"]) for im in images}
    except FileNotFoundError:
        raise ConfigError(f"COCO annotations not found: {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"{path} is not a COCO annotations file with images (file_name, id): "
                          f"{type(e).__name__}: {e}") from None

"""Object isolation: each detected object cut out of its frame, and the files that hold the cut-outs.

The cut-outs equal the classic per-object recipe (a full-frame mask from cv2.drawContours, then
cv2.bitwise_and or an alpha channel, then a crop to the integer box) pixel for pixel, but every
step runs on the object's box only.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..config import ISOLATE_SOURCES, IsolateOptions
from ..errors import ConfigError, OutputError
from ..kernels.isolate import cut_out
from ..kernels.raster import fill_polygons
from .files import exists, write_bytes, write_image

if TYPE_CHECKING:
    from ..results import Results

log = logging.getLogger(__name__)

def object_masks(result: Results, source: str = "mask") -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask crop (h, w) uint8, origin (x0, y0)) of every object: its mask, or its outline filled again."""
    if source == "mask":
        masks = result.masks.to_source()  # type: ignore[union-attr]  # host masks: checked by the callers
        return list(zip(masks.crops, masks.origins, strict=True))
    if source != "contour":
        raise ConfigError(f"source must be one of {', '.join(ISOLATE_SOURCES)}, got {source!r}")
    filled = []
    for polygon in result.masks.xy:
        # the recipe's polygon.astype(np.int32); OpenCV fills every pixel it draws on the outline too
        vertices = polygon.astype(np.int32)
        if len(vertices) == 0:
            filled.append((np.zeros((0, 0), np.uint8), np.zeros(2, np.int64)))
            continue
        low, high = vertices.min(axis=0), vertices.max(axis=0) + 1
        shape = (int(high[1] - low[1]), int(high[0] - low[0]))
        filled.append((fill_polygons([vertices], shape, offset=(int(low[0]), int(low[1]))), low.astype(np.int64)))
    return filled


def isolate(result: Results, background: str = "black", crop: bool = True, source: str = "mask",
            return_origins: bool = False) -> list[Any] | tuple[list[Any], np.ndarray]:
    """One image per object: (h, w, 3) BGR on black or (h, w, 4) BGRA on transparent, cropped to the object's
    integer box [y1:y2, x1:x2] (the classic recipe's box.astype(int): truncated, so it can start a pixel before the
    mask's pixel box, result.masks.origins, and end a pixel before it) or the full frame. With return_origins, also
    (N, 2) int64 (x, y): where each cut-out's top-left pixel lies in the frame, to place it back.

    With the masks left on the GPU (device_results=True), source "mask" is cut out on the GPU
    (postprocess.cuda.isolate_cuda): the masks stay there and only the cut-outs, the images asked for, come to the
    host. Outlines need the masks on the host (results.to_host())."""
    options = IsolateOptions(background, crop, source)
    if result.masks_on_device and options.source == "mask":
        from ..postprocess.cuda import isolate_cuda

        cutouts = isolate_cuda(result, background=options.background, crop=options.crop)
    else:
        result.require_host_masks(f"isolate(source={source!r})")
        cutouts = _cut_out_all(result, options, (options.background,))[0]
    if not return_origins:
        return cutouts
    return cutouts, options.regions(result.boxes.xyxy, result.orig_shape)[:, :2].copy()


def _cut_out_all(result: Results, options: IsolateOptions, modes: tuple[str, ...]) -> list[list[np.ndarray]]:
    """For each mode (see kernels.isolate.cut_out), every object's cut-out; the masks are made once."""
    frame = result.orig_img
    regions = options.regions(result.boxes.xyxy, frame.shape[:2])
    masks = object_masks(result, options.source)
    return [[cut_out(frame, mask, origin, region, mode) for (mask, origin), region in zip(masks, regions, strict=True)]
            for mode in modes]


def box_crops(result: Results, gain: float = 1.02, pad: int = 10) -> list[np.ndarray]:
    """Each object's box, grown by `gain` and `pad` pixels, cropped from the frame with its background
    (views into orig_img); the crop Ultralytics' save_crop writes."""
    frame = result.orig_img
    h, w = frame.shape[:2]
    xyxy = result.boxes.xyxy.astype(np.float32)
    centre, size = (xyxy[:, :2] + xyxy[:, 2:]) / 2, (xyxy[:, 2:] - xyxy[:, :2]) * np.float32(gain) + np.float32(pad)
    grown = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    boxes = np.trunc(grown).astype(np.int64)  # Ultralytics: .long() truncates toward zero, then clips
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return [frame[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A long class name is cut to this many characters plus "-" and 8 hex digits of its hash: a file name holds at most
# 255 bytes, and the stem, the index and the suffix share them with the label.
LABEL_KEEP = 60
LABEL_MAX = LABEL_KEEP + 1 + 8


def short_name(text: str, whole: str | None = None) -> str:
    """`text` as it is when it has at most LABEL_MAX bytes (UTF-8), else its first LABEL_KEEP bytes and "-" and 8 hex
    digits of a hash of `whole` (default: `text`): a file name holds at most 255 bytes, shared by the stem, the
    label, the index and the suffix, and names that differ only further on must stay apart."""
    size = lambda s: len(s.encode("utf-8", "surrogatepass"))  # noqa: E731  (file names are limited in bytes)
    if size(text) <= LABEL_MAX:
        return text
    digest = hashlib.sha256((whole if whole is not None else text).encode("utf-8", "surrogatepass")).hexdigest()
    keep = text[:LABEL_KEEP]
    while size(keep) > LABEL_KEEP:
        keep = keep[:-1]
    return f"{keep}-{digest[:8]}"


def safe_label(name: str) -> str:
    """A class name made safe as part of a file name: ASCII letters, digits, ".", "_" and "-" only, no leading dots,
    never empty, at most LABEL_MAX characters. A longer one keeps its first LABEL_KEEP characters and ends in "-"
    and a hash of the whole name, so that long names that differ only further on stay apart."""
    label = _UNSAFE.sub("_", str(name)).lstrip(".") or "object"
    return short_name(label, whole=str(name))


def save_isolated(result: Results, folder: str | Path, background: str = "black", crop: bool = True,
                  source: str = "mask", save_mask: bool = False, save_crop: bool = False,
                  stem: str | None = None) -> list[Path]:
    """Writes each object's cut-out as `{stem}_{label}-{index}.png` in `folder` (and `..._mask.png`,
    `..._crop.png` when asked); each file to a temporary name, then renamed. Objects whose cut-out is
    empty (a box less than a pixel wide) are skipped. Returns the paths written."""
    result.require_host_masks("save_isolated")
    options = IsolateOptions(background, crop, source)
    folder = Path(folder)
    # a path's stem is a file name already (only its length may not leave room for the rest); a caller's stem may hold
    # anything
    stem = safe_label(stem) if stem is not None else short_name(Path(result.path).stem if result.path else "image")
    written: list[Path] = []
    modes = (options.background, "mask") if save_mask else (options.background,)
    cutouts, *extra = _cut_out_all(result, options, modes)
    masks = extra[0] if save_mask else [None] * len(result)
    crops = box_crops(result) if save_crop else [None] * len(result)
    for k, (cutout, mask, box_crop) in enumerate(zip(cutouts, masks, crops, strict=True)):
        base = f"{stem}_{safe_label(result.names.get(int(result.boxes.cls[k]), str(result.boxes.cls[k])))}-{k}"
        if cutout.size == 0:
            log.warning("%s: object %d has an empty box, nothing written", stem, k)
            continue
        written.append(write_image(folder / f"{base}.png", cutout))
        if mask is not None:
            written.append(write_image(folder / f"{base}_mask.png", mask))
        if box_crop is not None and box_crop.size:
            written.append(write_image(folder / f"{base}_crop.png", box_crop))
    return written


def save_crop(result: Results, save_dir: str | Path, file_name: str | Path = "im.jpg") -> list[Path]:
    """Writes each object's box_crops() crop as Ultralytics' save_crop does: JPEG (quality 95, no chroma
    subsampling) to save_dir/<class name>/<file_name's stem>.jpg, the next free "-2", "-3", ... name when taken.
    Class names are made safe as folder names (safe_label). Returns the paths written."""
    if Path(file_name).name in ("", ".", ".."):
        raise ConfigError(f"file_name must name a file, got {str(file_name)!r}")
    save_dir, file_name = Path(save_dir), Path(file_name).with_suffix(".jpg")
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    written = []
    for k, crop in enumerate(box_crops(result)):
        if crop.size == 0:
            log.warning("object %d has an empty box crop, nothing written", k)
            continue
        folder = save_dir / safe_label(result.names.get(int(result.boxes.cls[k]), str(result.boxes.cls[k])))
        path, n = folder / file_name, 2
        while exists(path):  # Ultralytics' increment_path: im.jpg, im-2.jpg, im-3.jpg, ...
            path, n = folder / file_name.parent / f"{file_name.stem}-{n}.jpg", n + 1
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(crop), jpeg)
        if not ok:
            raise OutputError(f"cannot encode the crop of object {k} as JPEG for {path}")
        written.append(write_bytes(path, encoded.tobytes()))
    return written

"""Images: paths, folders, glob patterns and lists of them expanded into files (expand_source), image files read
(read_image) and any common image array made the BGR uint8 image the network reads (to_bgr)."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import SourceError

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".jpe", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".pgm",
                  ".ppm", ".jp2"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".asf",
                  ".gif", ".3gp", ".mts", ".m2ts", ".ogv"}
JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe"}

log = logging.getLogger(__name__)


def expand_source(source: Any) -> list[str | np.ndarray]:
    """Flattens a source into a list of image file paths and arrays; checks that every path exists."""
    if isinstance(source, np.ndarray):
        return [source]
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise SourceError(f"no images in folder {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            return files
        if path.is_file():
            return [text]
        if glob.has_magic(text):
            files = sorted(p for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise SourceError(f"no images match {text}")
            return files
        raise SourceError(f"source not found: {text}")
    if isinstance(source, (list, tuple)):
        if not source:
            raise SourceError("empty source list")
        return [item for s in source for item in expand_source(s)]
    raise SourceError(f"unsupported source type {type(source).__name__}: give a path, folder, glob, array or a list "
                      "of these")


def read_image(path: str) -> np.ndarray:
    """Reads a file as a BGR uint8 image, as Ultralytics does (cv2.IMREAD_COLOR: EXIF rotation, 16-bit and
    grayscale converted). np.fromfile + imdecode so that non-ASCII paths work. SourceError when it cannot be read;
    a JPEG without its end marker is decoded as far as it goes, with a warning."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as e:  # OpenCV refuses some files by raising rather than returning None
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise SourceError(f"cannot decode {path}: its header claims more pixels than OpenCV reads (2^30); the "
                              "file is corrupt, or set OPENCV_IO_MAX_IMAGE_PIXELS before starting Python to read it"
                              ) from None
        raise SourceError(f"cannot decode {path} as an image: OpenCV failed ({e.err})") from None
    if image is None and Path(path).suffix.lower() in VIDEO_SUFFIXES:
        raise SourceError(f"{path} is a video, not an image: give it as the only source of `edgeseg predict` or "
                          "`edgeseg track` (Python: edgeseg.process_video or Segmenter.stream)")
    if image is None:
        raise SourceError(f"cannot decode {path} as an image (empty, truncated or not an image)")
    if Path(path).suffix.lower() in JPEG_SUFFIXES and _truncated_jpeg(data):
        # OpenCV decodes some such files (what is missing comes out grey) without a word: the results may be of
        # part of a picture
        log.warning("%s: truncated JPEG (no end marker); processed as decoded", path)
    return image


def _truncated_jpeg(data: np.ndarray) -> bool:
    """True for JPEG data (it starts with the FF D8 marker) that does not end with the end-of-image marker FF D9,
    trailing zero bytes (padding some writers add) ignored."""
    raw = data.tobytes()
    return raw.startswith(b"\xff\xd8") and not raw.rstrip(b"\x00").endswith(b"\xff\xd9")


def to_bgr(image: np.ndarray, name: str = "array") -> np.ndarray:
    """Any common image array -> contiguous (H, W, 3) uint8 BGR.

    Accepts (H, W) and (H, W, 1) grayscale, (H, W, 3) BGR, (H, W, 4) BGRA (alpha dropped), in uint8,
    uint16 (scaled down by 256, as OpenCV's imread does) or float in [0, 1] (the overshoot of resizing, to about
    -0.45 and 1.45, is clipped). SourceError for other shapes and dtypes, and for float images that are not on the
    [0, 1] scale: above 2, below -0.5, or nowhere above 0 and somewhere below.
    """
    if not isinstance(image, np.ndarray):
        raise SourceError(f"{name}: expected a NumPy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or min(image.shape[:2]) < 1:
        raise SourceError(f"{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape "
                          f"{image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise SourceError(f"{name}: float image has NaN or infinite values")
        # a float image on the 0-255 scale (img.astype(np.float32)) would be clipped to a white frame without a
        # word; values a little above 1 are the overshoot of cubic or Lanczos resizing of a [0, 1] image (up to
        # about 1.45 on a checkerboard), and are clipped
        if image.max() > 2.0:
            raise SourceError(f"{name}: float images must be in [0, 1], this one reaches {float(image.max()):g} "
                              "(divide by 255, or pass uint8)")
        # a normalised image ([-1, 1], or [-1, 0]) would be clipped to a dark or black frame that finds nothing; the
        # overshoot of resizing a [0, 1] image (up to about -0.45) is clipped like the one above 1
        low = float(image.min())
        if low < -0.5 or (low < 0 and image.max() <= 0):
            raise SourceError(f"{name}: float images must be in [0, 1], this one reaches {low:g} (a [-1, 1] "
                              "normalised image: give x * 0.5 + 0.5; a [-1, 0] one: x + 1)")
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SourceError(f"{name}: unsupported image dtype {image.dtype} (use uint8, uint16 or float in [0, 1])")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)

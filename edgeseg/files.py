"""Writing output files atomically: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import OutputError

# mkstemp creates files readable by their owner only; outputs get the usual permissions instead
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    return path


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encodes by the file's suffix (.jpg, .png, ...) and writes atomically."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:  # a suffix OpenCV reads but has no encoder for (.dng, .mpo) raises instead of returning False
        ok = False
    if not ok:
        raise OutputError(f"cannot encode an image as {path.suffix!r} for {path}")
    return write_bytes(path, encoded.tobytes())


def write_json(path: str | Path, data: Any) -> Path:
    return write_bytes(path, json.dumps(data, separators=(",", ":")).encode())

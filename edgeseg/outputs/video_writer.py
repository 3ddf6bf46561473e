"""Writing a video atomically: frames go to a temporary file in the target's folder, renamed when closed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError
from .files import temporary_file

#: codec (FourCC) by file suffix; all of them written and read back by the tests with this OpenCV's FFmpeg
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoWriter:
    """`with VideoWriter("out.mp4", fps, (width, height)) as out: out.write(frame)`.

    Frames are BGR uint8 (height, width, 3) of exactly `size`. An odd width or height is stored one pixel larger,
    the last column or row repeated: video codecs keep colour at half resolution (4:2:0) and need even sizes, and
    OpenCV would otherwise drop that column or row without a word (as `ffmpeg -vf pad` users do, nothing of the
    frame is lost). The video appears at `path` only when the writer
    closes; an exception in the `with` block (KeyboardInterrupt included) still closes it, so what was written
    is a playable file at `path`, then the exception goes on. If no frame was written there is no file.
    `fourcc` overrides the codec chosen by suffix (`CODECS`).
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], fourcc: str | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if fourcc is None:
            if suffix not in CODECS:
                raise OutputError(f"cannot write video {self.path}: unsupported suffix {suffix or '(none)'!r} "
                                  f"(use one of {', '.join(sorted(CODECS))}, or name a fourcc)")
            fourcc = CODECS[suffix]
        if len(fourcc) != 4:
            raise OutputError(f"a fourcc has 4 characters, got {fourcc!r}")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise OutputError(f"cannot write video {self.path}: fps must be a positive number, got {fps!r}")
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise OutputError(f"cannot write video {self.path}: size must be (width, height) in pixels, got {size!r}")
        self.fps, self.size, self.fourcc = float(fps), (int(size[0]), int(size[1])), fourcc
        self.stored_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self.frames_written = 0
        try:
            # FFmpeg picks the container by the name's suffix, so the temporary name ends with the same one
            fd, self._tmp = temporary_file(self.path, f".{self.path.stem}.", f".tmp{self.path.suffix}")
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        os.close(fd)  # OpenCV opens the file by its name
        codec = cv2.VideoWriter_fourcc(*fourcc)
        self._writer: cv2.VideoWriter | None = cv2.VideoWriter(str(self._tmp), codec, self.fps, self.stored_size)
        if not self._writer.isOpened():
            self._writer = None
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"OpenCV cannot write {suffix or 'this file'} video with codec {fourcc!r} here "
                              f"(try .mp4 with mp4v or .avi with MJPG)")

    def write(self, frame: np.ndarray) -> None:
        """Appends one BGR uint8 (height, width, 3) frame."""
        if self._writer is None:
            raise OutputError(f"{self.path}: the writer is closed")
        w, h = self.size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise OutputError(f"{self.path}: frames must be uint8 ({h}, {w}, 3) BGR as the video was opened, got {got}")
        if self.stored_size != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self.stored_size[1] - h, 0, self.stored_size[0] - w,
                                       cv2.BORDER_REPLICATE)
        self._writer.write(frame)
        self.frames_written += 1

    def close(self) -> Path | None:
        """Finishes the file and moves it to `path`; returns the path, or None when no frame was written."""
        writer, self._writer = self._writer, None
        if writer is None:
            return self.path if self.frames_written else None
        try:
            writer.release()  # writes the container's index: without it an .mp4 does not play
            if not self.frames_written:
                self._tmp.unlink(missing_ok=True)
                return None
            os.replace(self._tmp, self.path)
        except OSError as e:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoWriter({str(self.path)!r}, fps={self.fps}, size={self.size}, fourcc={self.fourcc!r})"

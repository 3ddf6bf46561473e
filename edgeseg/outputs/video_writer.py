"""Writing a video atomically: frames go to a temporary file in the target's folder, renamed when closed and checked."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np

from ..errors import OutputError
from .files import temporary_file

log = logging.getLogger(__name__)

#: codec (FourCC) by file suffix; all of them written and read back by the tests with this OpenCV's FFmpeg
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}

# OpenCV's VideoWriter.write reports nothing (FFmpeg only logs "Failed to write frame" and stops writing for good), so
# the writer watches its file: FFmpeg writes it in blocks of _WRITE_BLOCK bytes (measured with OpenCV 4 and 5), and a
# file that has not grown while more than that has been encoded, or one with no room left for the next block, has
# failed. Looking costs two system calls, every _CHECK_EVERY frames.
_WRITE_BLOCK = 256 * 1024
_CHECK_EVERY = 16


def _free_bytes(folder: Path) -> int:
    """Bytes this process may still write in `folder`'s file system (root may also fill the blocks kept for it)."""
    if not hasattr(os, "statvfs"):  # Windows
        return shutil.disk_usage(folder).free
    st = os.statvfs(folder)
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def _min_frame_bytes(fourcc: str, size: tuple[int, int]) -> int:
    """The fewest bytes one frame costs in `fourcc` at `size` ((width, height)), 0 when not known.

    Measured with unchanging frames: mp4v spends at least a frame header and a bit per 16x16 block (2.8 bits with
    its keyframes), MJPG a JPEG header and more. Other codecs may cost less: a stall of theirs is found when the
    file closes."""
    return max(8, size[0] * size[1] // 2048) if fourcc in ("mp4v", "MJPG") else 0


class VideoWriter:
    """`with VideoWriter("out.mp4", fps, (width, height)) as out: out.write(frame)`.

    Frames are BGR uint8 (height, width, 3) of exactly `size`. An odd width or height is stored one pixel larger,
    the last column or row repeated: video codecs keep colour at half resolution (4:2:0) and need even sizes, and
    OpenCV would otherwise drop that column or row without a word (as `ffmpeg -vf pad` users do, nothing of the
    frame is lost). The video appears at `path` only when the writer closes and the finished file, opened again,
    plays and holds the frames written. A failed write (a full disk, a file that stopped growing, a file that does
    not play) is an OutputError and leaves no file. An exception in the `with` block (KeyboardInterrupt included)
    still closes the writer, so what was written is a playable file at `path`, then the exception goes on; if that
    file fails its check, it is removed and the failure logged. If no frame was written there is no file.
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
        self._kept: Path | None = None  # `path`, once closed and checked
        self._size = self._grown_at = 0  # the temporary file's size when last looked at, and the frame it grew at
        self._min_frame_bytes = _min_frame_bytes(fourcc, self.stored_size)
        try:
            # FFmpeg picks the container by the name's suffix, so the temporary name ends with the same one
            fd, self._tmp = temporary_file(self.path, f".{self.path.stem}.", f".tmp{self.path.suffix}")
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._writer: cv2.VideoWriter | None = None
        try:  # a Ctrl-C in here must not leave the temporary file behind
            os.close(fd)  # OpenCV opens the file by its name
            codec = cv2.VideoWriter_fourcc(*fourcc)
            writer = cv2.VideoWriter(str(self._tmp), codec, self.fps, self.stored_size)
            if not writer.isOpened():
                raise OutputError(f"OpenCV cannot write {suffix or 'this file'} video with codec {fourcc!r} here "
                                  f"(try .mp4 with mp4v or .avi with MJPG)")
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._writer = writer

    def write(self, frame: np.ndarray) -> None:
        """Appends one BGR uint8 (height, width, 3) frame; OutputError (and no file) when the writing fails."""
        if self._writer is None:
            raise OutputError(f"{self.path}: the writer is closed")
        w, h = self.size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise OutputError(f"{self.path}: frames must be uint8 ({h}, {w}, 3) BGR as the video was opened, got {got}")
        if self.stored_size != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self.stored_size[1] - h, 0, self.stored_size[0] - w,
                                       cv2.BORDER_REPLICATE)
        try:
            self._writer.write(frame)
        except (cv2.error, OSError) as e:
            self._fail(f"frame {self.frames_written} was not written ({' '.join(str(e).split())})")
        self.frames_written += 1
        if self.frames_written % _CHECK_EVERY == 0:
            self._check_growth()

    def _check_growth(self) -> None:
        """Fails when the temporary file has stopped growing, so that a long run ends now rather than after hours
        of frames that go nowhere."""
        try:
            size = self._tmp.stat().st_size
            no_room = _free_bytes(self._tmp.parent) < _WRITE_BLOCK
        except OSError as e:
            self._fail(e.strerror or str(e))
        if size > self._size:
            self._size, self._grown_at = size, self.frames_written
        elif no_room:
            self._fail("no space left on the device")
        elif (self.frames_written - self._grown_at) * self._min_frame_bytes > 2 * _WRITE_BLOCK:
            self._fail(f"the file stopped growing at {size} bytes while frames kept coming (a disk quota, a file "
                       "size limit or a failing disk)")

    def _fail(self, reason: str) -> NoReturn:
        """Drops the temporary file and raises OutputError for `reason`."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                with contextlib.suppress(cv2.error):
                    writer.release()
        finally:
            self._tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {self.path}: {reason}") from None

    def _check_finished(self) -> str | None:
        """What is wrong with the finished temporary file, opened again as a player would, or None when it plays
        and holds the frames written."""
        capture = cv2.VideoCapture(str(self._tmp))
        try:
            if not capture.isOpened():
                problem = "the finished file does not open as a video"
            else:
                count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
                if abs(count - self.frames_written) > 1:  # containers may count one more or one less
                    problem = f"the finished file holds {max(count, 0)} of the {self.frames_written} frames written"
                elif not capture.read()[0]:
                    problem = "the finished file's first frame cannot be read"
                else:
                    return None
        finally:
            capture.release()
        return "no space left on the device" if _free_bytes(self._tmp.parent) < _WRITE_BLOCK else problem

    def close(self) -> Path | None:
        """Finishes the file, checks it and moves it to `path`; returns the path, or None when no frame was written.

        OutputError, and no file, when the finished file does not play or lacks frames. Closing again returns the
        same."""
        writer, self._writer = self._writer, None
        if writer is None:
            return self._kept
        try:
            writer.release()  # writes the container's index: without it an .mp4 does not play
            if not self.frames_written:
                self._tmp.unlink(missing_ok=True)
                return None
            problem = self._check_finished()
            if problem is None:
                os.replace(self._tmp, self.path)
        except (OSError, cv2.error) as e:
            problem = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())
        except BaseException:  # a second Ctrl-C while finishing: no file, and no temporary one
            self._tmp.unlink(missing_ok=True)
            raise
        if problem is not None:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {problem}") from None
        self._kept = self.path
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except OutputError as e:  # the exception that ended the block goes on; this says what became of the video
            log.error("%s", e)

    def __repr__(self) -> str:
        return f"VideoWriter({str(self.path)!r}, fps={self.fps}, size={self.size}, fourcc={self.fourcc!r})"

"""Video files, cameras and network streams read with cv2.VideoCapture, as an iterator of `Frame`.

Files give every frame in order. Live sources (cameras, streams) are read by a thread that keeps only the newest
frame, so a slow consumer always works on the present: the frames it never saw are counted as dropped. A live
source that fails is opened again with exponential back-off. A frame that cannot be decoded is skipped with a
warning and counted; a video that ends early (truncated) ends the iteration, never with an exception.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, SourceError
from .frames import Frame, FrameSource
from .images import to_bgr

log = logging.getLogger(__name__)

STREAM_SCHEMES = {"rtsp", "rtsps", "rtsp+tcp", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt"}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ENV_LOCK = threading.Lock()  # guards OPENCV_FFMPEG_CAPTURE_OPTIONS while a stream opens

#: what `capture_factory` returns: anything with cv2.VideoCapture's read(), isOpened(), release() and get()
Capture = Any


def is_stream_url(text: str) -> bool:
    """True for a URL with one of STREAM_SCHEMES (rtsp://, http://, udp://, ...)."""
    m = _URL.match(text)
    return m is not None and m.group(1).lower() in STREAM_SCHEMES



def _default_capture(target: int | str, timeout_s: float) -> Capture:
    """cv2.VideoCapture for a camera index, a file or a URL; streams get open and read time-outs so that a dead
    connection fails instead of blocking forever. `rtsp+tcp://` asks FFmpeg for RTSP over TCP."""
    if isinstance(target, int):
        return cv2.VideoCapture(target)
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if not _URL.match(target):
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG)
    if target.lower().startswith("rtsp+tcp://"):
        with _ENV_LOCK:  # the FFmpeg backend reads its options from the environment when it opens
            saved = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
            try:
                return cv2.VideoCapture("rtsp://" + target[len("rtsp+tcp://"):], cv2.CAP_FFMPEG, params)
            finally:
                if saved is None:
                    os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                else:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = saved
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)



def _capture_fps(capture: Capture) -> float | None:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.0 < fps <= 1000.0 else None  # RTSP sometimes reports its 90 kHz clock


def _capture_size(capture: Capture) -> tuple[int, int] | None:
    w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    return (w, h) if w > 0 and h > 0 else None


def _read(capture: Capture) -> np.ndarray | None:
    """The next frame as a BGR uint8 image, or None when the read failed (end, dropped connection, bad data)."""
    try:
        ok, image = capture.read()
    except cv2.error:
        return None
    if not ok or image is None or image.size == 0:
        return None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        try:
            return to_bgr(image)
        except SourceError:
            return None
    return image


class CaptureSource(FrameSource):
    """A video file, camera or stream read with cv2.VideoCapture (or `capture_factory(target)`).

    `live=False`: every frame in order, in the caller's thread. A failed read is retried; up to `max_bad_reads`
    failures in a row are skipped (counted in `frames_corrupt`, with a warning) when a good frame follows, after
    that the video ends. A video that ends before the frame count its header announces counts the missing
    frames as corrupt and says so.

    `live=True`: a reader thread keeps only the newest frame. When reading fails it opens the source again after
    `reconnect_delay[0]` seconds, doubling up to `reconnect_delay[1]`, at most `reconnect_tries` times in a row and
    for at most `reconnect_timeout` seconds; then (or at once with `reconnect=False`) the iteration ends with a
    warning.
    """

    def __init__(self, target: int | str, name: str, *, live: bool, reconnect: bool = True,
                 reconnect_tries: int = 10, reconnect_delay: tuple[float, float] = (0.5, 8.0),
                 reconnect_timeout: float = 60.0, max_bad_reads: int = 30, timeout: float = 10.0,
                 capture_factory: Callable[[int | str], Capture] | None = None):
        if reconnect_tries < 0 or max_bad_reads < 1 or not 0 < reconnect_delay[0] <= reconnect_delay[1]:
            raise ConfigError(f"need reconnect_tries >= 0, max_bad_reads >= 1 and 0 < reconnect_delay[0] <= "
                              f"reconnect_delay[1], got {reconnect_tries}, {max_bad_reads}, {reconnect_delay}")
        super().__init__(name)
        self.live = live
        self._target = target
        self._path = target if isinstance(target, str) else None  # a file or URL; a camera has none
        self._factory = capture_factory or (lambda t: _default_capture(t, timeout))
        self._reconnect, self._tries, self._delay = reconnect, reconnect_tries, reconnect_delay
        self._reconnect_timeout, self._max_bad_reads = reconnect_timeout, max_bad_reads
        self._capture: Capture | None = self._open()
        if self._capture is None:
            what = "" if isinstance(target, int) else "stream " if _URL.match(str(target)) else "video "
            hint = {"": "is it connected and free?", "stream ": "check the address and that it is up",
                    "video ": "truncated, damaged, or a codec this OpenCV build cannot decode"}[what]
            raise SourceError(f"cannot open {what}{name} ({hint})")
        self.fps, self.size = _capture_fps(self._capture), _capture_size(self._capture)
        frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = frames if frames > 0 and not live else None
        # live: the reader thread and the consumer share `_slot` (the newest frame) under `_ready`
        self._ready = threading.Condition()
        self._slot: Frame | None = None
        self._stop = threading.Event()
        self._reader_done = False
        self._thread: threading.Thread | None = None
        if live:
            self._thread = threading.Thread(target=self._read_live, name=f"edgeseg-reader {name}", daemon=True)
            self._thread.start()

    def _open(self) -> Capture | None:
        try:
            capture = self._factory(self._target)
        except cv2.error:
            return None
        if capture is not None and capture.isOpened():
            return capture
        if capture is not None:
            capture.release()
        return None

    def _note_size(self, image: np.ndarray) -> None:
        if image.shape[1::-1] != self.size:  # rotation metadata or a stream that changed resolution
            self.size = image.shape[1::-1]

    # ---- files: every frame, in the caller's thread -------------------------------------------------------
    def _generate(self) -> Iterator[Frame]:
        if self.live:
            yield from self._take_newest()
            return
        capture, index, failed = self._capture, 0, 0
        try:
            while True:
                image = _read(capture)
                if image is None:
                    failed += 1
                    done = self.frame_count is not None and index + failed > self.frame_count
                    if done or failed >= self._max_bad_reads:
                        break
                    continue
                if failed:
                    self.frames_corrupt += failed
                    log.warning("%s: skipped %s unreadable frame(s) before frame %s", self.name, failed, index + failed)
                    index += failed
                    failed = 0
                self.frames_read += 1
                self._note_size(image)
                yield Frame(image, index, self.name, float(capture.get(cv2.CAP_PROP_POS_MSEC)), self.fps, self._path)
                index += 1
            missing = (self.frame_count or 0) - index
            if missing > 1:  # some containers estimate their frame count from the duration: allow one frame
                self.frames_corrupt += missing
                log.warning("%s: the video ended after %s of the %s frames its header announces (%s lost: truncated or "
                            "damaged file)", self.name, index, self.frame_count, missing)
        finally:
            self._release()

    # ---- live: a reader thread keeps the newest frame -------------------------------------------------------
    def _read_live(self) -> None:
        index, start = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                image = _read(self._capture)
                if image is None:
                    if not self._reopen():
                        return
                    continue
                with self._ready:
                    if self._slot is not None:
                        self.frames_dropped += 1
                    self.frames_read += 1
                    self._note_size(image)
                    self._slot = Frame(image, index, self.name, (time.monotonic() - start) * 1e3, self.fps,
                                       self._path)
                    self._ready.notify()
                index += 1
        except Exception as e:  # the consumer must not wait forever on a reader that died
            log.warning("%s: reader stopped: %s: %s", self.name, type(e).__name__, e)
        finally:
            self._release()
            with self._ready:
                self._reader_done = True
                self._ready.notify_all()

    def _reopen(self) -> bool:
        """After a failed read: opens the source again with exponential back-off; False when it gave up."""
        self._release()
        if self._stop.is_set():
            return False
        if not self._reconnect:
            log.warning("%s: reading stopped (reconnect is off)", self.name)
            return False
        delay, start, tries = self._delay[0], time.monotonic(), 0
        while tries < self._tries and time.monotonic() - start + delay <= self._reconnect_timeout:
            if self._stop.wait(delay):
                return False
            tries += 1
            self._capture = self._open()
            if self._capture is not None:
                self.reconnects += 1
                log.warning("%s: reconnected (attempt %s)", self.name, tries)
                return True
            delay = min(delay * 2, self._delay[1])
        log.warning("%s: the stream stopped; gave up reconnecting after %s tries in %.1f s", self.name, tries,
                    time.monotonic() - start)
        return False

    def _take_newest(self) -> Iterator[Frame]:
        while True:
            with self._ready:
                while self._slot is None and not self._reader_done:
                    self._ready.wait()
                if self._slot is None:
                    return
                frame, self._slot = self._slot, None
            yield frame

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the reader thread (waiting up to `timeout` s for a read in progress) and releases the capture."""
        self._stop.set()
        super().close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: the reader thread is still blocked in a read; it ends when the read does", self.name)
        else:
            self._release()

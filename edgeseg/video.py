"""Frame sources: images, folders and globs, video files, cameras, network streams and frames pushed by the caller,
all read as one iterator of `Frame`.

Files give every frame in order. Live sources (cameras, streams) are read by a thread that keeps only the newest
frame, so a slow consumer always works on the present: the frames it never saw are counted as dropped. A live
source that fails is opened again with exponential back-off. A frame that cannot be decoded is skipped with a
warning and counted; a video that ends early (truncated) ends the iteration, never with an exception.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import ConfigError, SourceError
from .sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand_source, read_image, to_bgr

log = logging.getLogger("edgeseg")

STREAM_SCHEMES = {"rtsp", "rtsps", "rtsp+tcp", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt"}
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ENV_LOCK = threading.Lock()  # guards OPENCV_FFMPEG_CAPTURE_OPTIONS while a stream opens

#: what `capture_factory` returns: anything with cv2.VideoCapture's read(), isOpened(), release() and get()
Capture = Any


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame: `image` (H, W, 3) uint8 BGR; `index` its number in the source (gaps mean skipped or dropped
    frames); `source` the file, camera or stream it came from; `pos_ms` its time in the video, or for live and
    pushed frames the time since the source opened; `fps` of the source when known."""

    image: np.ndarray
    index: int
    source: str
    pos_ms: float | None = None
    fps: float | None = None


class FrameSource:
    """An iterator of `Frame` and a context manager; `close()` stops reading and releases the device or file.

    Counters: `frames_read` (frames decoded from the source), `frames_dropped` (live frames replaced by a newer
    one before they were taken), `frames_corrupt` (frames skipped because they could not be decoded, or missing
    at the end of a truncated video), `reconnects` (live sources opened again after a failure). `fps` and `size`
    ((width, height)) are None when the source does not say.
    """

    live = False

    def __init__(self, name: str, fps: float | None = None, size: tuple[int, int] | None = None):
        self.name, self.fps, self.size = name, fps, size
        self.frames_read = self.frames_dropped = self.frames_corrupt = self.reconnects = 0
        self._frames: Iterator[Frame] | None = None
        self.closed = False

    def _generate(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> "FrameSource":
        return self

    def __next__(self) -> Frame:
        if self.closed:
            raise StopIteration
        if self._frames is None:
            self._frames = self._generate()
        return next(self._frames)

    def _image(self, item: Any, label: str, read: Callable[[Any], Any] | None = None) -> np.ndarray | None:
        """`item` (or read(item)) as a BGR uint8 image, counted in frames_read; or None when it is not one, skipped
        with a warning and counted in frames_corrupt: one bad file or item never ends the sequence."""
        try:
            image = to_bgr(item if read is None else read(item), label)
        except SourceError as e:
            self.frames_corrupt += 1
            log.warning(f"skipped: {e}")
            return None
        self.frames_read += 1
        return image

    def stats(self) -> dict[str, int]:
        return {"frames_read": self.frames_read, "frames_dropped": self.frames_dropped,
                "frames_corrupt": self.frames_corrupt, "reconnects": self.reconnects}

    def close(self) -> None:
        self.closed = True
        if self._frames is not None:
            try:  # generators release what they hold in `finally`
                self._frames.close()  # type: ignore[attr-defined]
            except ValueError:  # running in another thread right now: it sees `closed` / the stop event and ends
                pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, size={self.size}, {self.stats()})"


class ImageSource(FrameSource):
    """Image files, folders, glob patterns and arrays (as `edgeseg.sources.expand_source` lists them), in order;
    an unreadable image is skipped with a warning and counted."""

    def __init__(self, source: Any, name: str | None = None):
        self._items = expand_source(source)
        super().__init__(name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "images"))

    def _generate(self) -> Iterator[Frame]:
        for k, item in enumerate(self._items):
            label = f"array {k}" if isinstance(item, np.ndarray) else item
            image = self._image(item, label, None if isinstance(item, np.ndarray) else read_image)
            if image is not None:
                yield Frame(image, k, label)


class IterableSource(FrameSource):
    """NumPy images from any iterable (a generator, for example); an item that is not an image is skipped with a
    warning and counted."""

    def __init__(self, images: Iterable[Any], name: str = "frames", fps: float | None = None):
        super().__init__(name, fps)
        self._images = images

    def _generate(self) -> Iterator[Frame]:
        for k, item in enumerate(self._images):
            image = self._image(item, f"{self.name} frame {k}")
            if image is not None:
                yield Frame(image, k, self.name, k * 1000.0 / self.fps if self.fps else None, self.fps)


class PushSource(FrameSource):
    """Frames pushed by the caller, from any thread: `push(image)` then `close()` when there are no more.

    `maxsize=0` keeps every pushed frame (like a file); `maxsize=n` keeps the newest n and drops (and counts) the
    oldest, like a live source. Iteration waits for frames and ends once the source is closed and drained.
    """

    live = True

    def __init__(self, name: str = "push", fps: float | None = None, maxsize: int = 0):
        if maxsize < 0:
            raise ConfigError(f"maxsize must be >= 0, got {maxsize}")
        super().__init__(name, fps)
        self._queue: collections.deque[Frame] = collections.deque()
        self._maxsize = maxsize
        self._ready = threading.Condition()
        self._start = time.monotonic()
        self._ended = False

    def push(self, image: np.ndarray, pos_ms: float | None = None) -> None:
        """Adds one image ((H, W), (H, W, 3|4), uint8/uint16/float: see `to_bgr`); SourceError once closed."""
        image = to_bgr(image, f"{self.name} frame {self.frames_read}")
        with self._ready:
            if self._ended:
                raise SourceError(f"{self.name}: cannot push a frame after close()")
            if pos_ms is None:
                pos_ms = (time.monotonic() - self._start) * 1e3
            if image.shape[1::-1] != self.size:
                self.size = image.shape[1::-1]
            self._queue.append(Frame(image, self.frames_read, self.name, pos_ms, self.fps))
            self.frames_read += 1
            if self._maxsize and len(self._queue) > self._maxsize:
                self._queue.popleft()
                self.frames_dropped += 1
            self._ready.notify()

    def _generate(self) -> Iterator[Frame]:
        while True:
            with self._ready:
                while not self._queue and not self._ended:
                    self._ready.wait()
                if not self._queue:
                    return
                frame = self._queue.popleft()
            yield frame

    def close(self) -> None:
        """Ends the source: frames already pushed are still handed over, `push` raises from now on."""
        with self._ready:
            self._ended = True
            self._ready.notify_all()

    def __exit__(self, *exc: object) -> None:
        super().close()
        self.close()


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
                    log.warning(f"{self.name}: skipped {failed} unreadable frame(s) before frame {index + failed}")
                    index += failed
                    failed = 0
                self.frames_read += 1
                self._note_size(image)
                yield Frame(image, index, self.name, float(capture.get(cv2.CAP_PROP_POS_MSEC)), self.fps)
                index += 1
            missing = (self.frame_count or 0) - index
            if missing > 1:  # some containers estimate their frame count from the duration: allow one frame
                self.frames_corrupt += missing
                log.warning(f"{self.name}: the video ended after {index} of the {self.frame_count} frames its header "
                            f"announces ({missing} lost: truncated or damaged file)")
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
                    self._slot = Frame(image, index, self.name, (time.monotonic() - start) * 1e3, self.fps)
                    self._ready.notify()
                index += 1
        except Exception as e:  # the consumer must not wait forever on a reader that died
            log.warning(f"{self.name}: reader stopped: {type(e).__name__}: {e}")
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
            log.warning(f"{self.name}: reading stopped (reconnect is off)")
            return False
        delay, start, tries = self._delay[0], time.monotonic(), 0
        while tries < self._tries and time.monotonic() - start + delay <= self._reconnect_timeout:
            if self._stop.wait(delay):
                return False
            tries += 1
            self._capture = self._open()
            if self._capture is not None:
                self.reconnects += 1
                log.warning(f"{self.name}: reconnected (attempt {tries})")
                return True
            delay = min(delay * 2, self._delay[1])
        log.warning(f"{self.name}: the stream stopped; gave up reconnecting after {tries} tries in "
                    f"{time.monotonic() - start:.1f} s")
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
                log.warning(f"{self.name}: the reader thread is still blocked in a read; it ends when the read does")
        else:
            self._release()


def is_stream_url(text: str) -> bool:
    """True for a URL with one of STREAM_SCHEMES (rtsp://, http://, udp://, ...)."""
    m = _URL.match(text)
    return m is not None and m.group(1).lower() in STREAM_SCHEMES


def open_source(source: Any, *, live: bool | None = None, reconnect: bool = True, reconnect_tries: int = 10,
                reconnect_delay: tuple[float, float] = (0.5, 8.0), reconnect_timeout: float = 60.0,
                max_bad_reads: int = 30, timeout: float = 10.0, fps: float | None = None,
                capture_factory: Callable[[int | str], Capture] | None = None) -> FrameSource:
    """Opens any frame source; use it as `with open_source(x) as frames: for f in frames: ...`.

    - image file, folder, glob pattern, NumPy image, or a list of these: `ImageSource`
    - video file (`VIDEO_SUFFIXES`): every frame in order
    - camera index (`0` or `"0"`) and stream URL (rtsp://, rtsp+tcp://, http(s)://, udp://, ...): newest frame
      only, with reconnection (an http(s) URL that names a video file is read frame by frame)
    - a `PushSource` (returned as it is) or any other iterable of NumPy images (`fps` tells their rate)

    `live` overrides the choice between newest-frame (True) and every-frame (False) reading for videos, cameras
    and streams. `capture_factory(target) -> capture` replaces cv2.VideoCapture (tests, other backends).
    The reconnect options and `max_bad_reads` are described in `CaptureSource`; `timeout` (s) bounds opening and
    reading a network stream. Raises SourceError for a missing file, a source that cannot be opened, or an
    unknown kind of source.
    """
    options = dict(reconnect=reconnect, reconnect_tries=reconnect_tries, reconnect_delay=reconnect_delay,
                   reconnect_timeout=reconnect_timeout, max_bad_reads=max_bad_reads, timeout=timeout,
                   capture_factory=capture_factory)
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return CaptureSource(int(source), f"camera {int(source)}", live=True if live is None else live, **options)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if is_stream_url(text):
            is_file = Path(text.split("?")[0]).suffix.lower() in VIDEO_SUFFIXES and text.lower().startswith("http")
            return CaptureSource(text, text, live=not is_file if live is None else live, **options)
        path = Path(text)
        if text.isdigit() and not path.exists():
            return CaptureSource(int(text), f"camera {text}", live=True if live is None else live, **options)
        if path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir():
            if not path.is_file():
                raise SourceError(f"video not found: {text}")
            return CaptureSource(text, text, live=bool(live), **{**options, "reconnect": False})  # no replay at the end
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            videos = ", ".join(sorted(VIDEO_SUFFIXES))
            raise SourceError(f"unknown source type: {text} (give an image, a video ({videos}), a folder, a glob "
                              "pattern, a camera index or a stream URL)")
        return ImageSource(text)
    if isinstance(source, np.ndarray):
        return ImageSource(source)
    if isinstance(source, (list, tuple)):
        for item in source:
            if isinstance(item, (str, os.PathLike)) and Path(os.fspath(item)).suffix.lower() in VIDEO_SUFFIXES:
                raise SourceError(f"{os.fspath(item)}: a list can hold images only; open each video on its own")
        return ImageSource(list(source), name="images")
    if isinstance(source, Iterable):
        return IterableSource(source, fps=fps)
    raise SourceError(f"unknown source type {type(source).__name__}: give a path, folder, glob, video, camera index, "
                      "stream URL, NumPy image or an iterable of images")

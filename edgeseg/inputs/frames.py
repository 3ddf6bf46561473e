"""Frames: one `Frame` type for every kind of source, and the sources that yield them: image files, folders, globs
and arrays (`ImageSource`), any iterable of arrays (`IterableSource`) and frames pushed by the caller (`PushSource`).
Video files, cameras and streams are in `capture`; `source.open_source` picks the source for what the user gives.

A frame that cannot be read is skipped with a warning and counted, unless the source is strict.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError
from .images import expand_source, read_image, to_bgr

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame: `image` (H, W, 3) uint8 BGR; `index` its number in the source (gaps mean skipped or dropped
    frames); `source` the file, camera or stream it came from; `pos_ms` its time in the video, or for live and
    pushed frames the time since the source opened; `fps` of the source when known; `path` the image or video file
    (or stream URL) it was read from, what Results.path holds; None for arrays, cameras and pushed frames, whose
    Results the Segmenter names image0.jpg, image1.jpg, ... as Ultralytics does. `stream`: which of several
    sources read together it came from (0 for a single source)."""

    image: np.ndarray
    index: int
    source: str
    pos_ms: float | None = None
    fps: float | None = None
    path: str | None = None
    stream: int = 0


class FrameSource:
    """An iterator of `Frame` and a context manager; `close()` stops reading and releases the device or file.

    Counters: `frames_read` (frames decoded from the source), `frames_dropped` (live frames replaced by a newer
    one before they were taken), `frames_corrupt` (frames skipped because they could not be decoded, or missing
    at the end of a truncated video), `reconnects` (live sources opened again after a failure); `skipped` says why
    each skipped item was skipped (one line each, naming the file or item). `fps`, `size`
    ((width, height)) and `frame_count` (frames the source announces) are None when the source does not say.
    A `strict` source raises SourceError for an item it cannot read instead of skipping it.
    """

    live = False
    strict = False

    def __init__(self, name: str, fps: float | None = None, size: tuple[int, int] | None = None):
        self.name, self.fps, self.size = name, fps, size
        self.frame_count: int | None = None
        self.frames_read = self.frames_dropped = self.frames_corrupt = self.reconnects = 0
        self.skipped: list[str] = []
        self._frames: Iterator[Frame] | None = None
        self.closed = False

    def _generate(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        if self.closed:
            raise StopIteration
        if self._frames is None:
            self._frames = self._generate()
        return next(self._frames)

    def _image(self, item: Any, label: str, read: Callable[[Any], Any] | None = None) -> np.ndarray | None:
        """`item` (or read(item)) as a BGR uint8 image, counted in frames_read; or None when it is not one, skipped
        with a warning and counted in frames_corrupt: one bad file or item never ends the sequence (a strict
        source raises instead)."""
        try:
            image = to_bgr(item if read is None else read(item), label)
        except SourceError as e:
            if self.strict:
                raise
            self.frames_corrupt += 1
            self.skipped.append(str(e))
            log.warning("skipped: %s", e)
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

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, size={self.size}, {self.stats()})"


class ImageSource(FrameSource):
    """Image files, folders, glob patterns and arrays (as `edgeseg.inputs.images.expand_source` lists them), in order;
    an unreadable image is skipped with a warning and counted (`strict=True`: a SourceError). The list of files is
    fixed when the source is made."""

    def __init__(self, source: Any, name: str | None = None, strict: bool = False):
        self._items = expand_source(source)
        super().__init__(name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "images"))
        self.strict = strict
        self.frame_count = len(self._items)

    @property
    def items(self) -> list[str | np.ndarray]:
        """The image files and arrays this source reads, in order."""
        return list(self._items)

    def _generate(self) -> Iterator[Frame]:
        for k, item in enumerate(self._items):
            path = None if isinstance(item, np.ndarray) else item
            image = self._image(item, f"image {k}" if path is None else path, None if path is None else read_image)
            if image is not None:
                yield Frame(image, k, path or f"array {k}", path=path)


class IterableSource(FrameSource):
    """NumPy images, or `Frame`s (handed on as they are, their image checked), from any iterable (a generator, for
    example); an item that is not an image is skipped with a warning and counted (`strict=True`: a SourceError)."""

    def __init__(self, images: Iterable[Any], name: str = "frames", fps: float | None = None, strict: bool = False):
        super().__init__(name, fps)
        self._images = images
        self.strict = strict

    def _generate(self) -> Iterator[Frame]:
        for k, item in enumerate(self._images):
            if isinstance(item, Frame):
                image = self._image(item.image, f"{item.source} frame {item.index}")
                if image is not None:
                    yield item if image is item.image else dataclasses.replace(item, image=image)
                continue
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

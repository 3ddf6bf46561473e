"""What a source is, decided once: `open_source` turns anything a user gives (paths, folders, globs, arrays, videos,
cameras, stream URLs, iterables of images, a PushSource) into one `FrameSource`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .capture import Capture, CaptureSource, is_stream_url
from .frames import Frame, FrameSource, ImageSource, IterableSource
from .images import IMAGE_SUFFIXES, VIDEO_SUFFIXES


def is_video_source(source: Any) -> bool:
    """True for what is read as a sequence of frames: a video file, a camera index or a stream URL."""
    if isinstance(source, int) and not isinstance(source, bool):
        return True
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    return (is_stream_url(text) or (text.isdigit() and not Path(text).exists())
            or Path(text).suffix.lower() in VIDEO_SUFFIXES)


def open_source(source: Any, *, live: bool | None = None, reconnect: bool = True, reconnect_tries: int = 10,
                reconnect_delay: tuple[float, float] = (0.5, 8.0), reconnect_timeout: float = 60.0,
                max_bad_reads: int = 30, timeout: float = 10.0, fps: float | None = None, strict: bool = False,
                capture_factory: Callable[[int | str], Capture] | None = None) -> FrameSource:
    """Opens any frame source; use it as `with open_source(x) as frames: for f in frames: ...`.

    - image file, folder, glob pattern, NumPy image, or a list of these: `ImageSource`
    - video file (`VIDEO_SUFFIXES`): every frame in order
    - camera index (`0` or `"0"`) and stream URL (rtsp://, rtsp+tcp://, http(s)://, udp://, ...): newest frame
      only, with reconnection (an http(s) URL that names a video file is read frame by frame)
    - a `FrameSource` such as a `PushSource` (returned as it is), or any other iterable of NumPy images or of
      `Frame`s (`fps` tells their rate)

    `live` overrides the choice between newest-frame (True) and every-frame (False) reading for videos, cameras
    and streams. `capture_factory(target) -> capture` replaces cv2.VideoCapture (tests, other backends).
    The reconnect options and `max_bad_reads` are described in `CaptureSource`; `timeout` (s) bounds opening and
    reading a network stream. `strict`: an image file or array that cannot be read is a SourceError instead of
    a skipped, counted frame. Raises SourceError for a missing file, a source that cannot be opened, or an
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
        return ImageSource(text, strict=strict)
    if isinstance(source, np.ndarray):
        return ImageSource(source, strict=strict)
    if isinstance(source, (list, tuple)) and source and all(isinstance(item, Frame) for item in source):
        return IterableSource(source, fps=fps, strict=strict)
    if isinstance(source, (list, tuple)):
        for item in source:
            if isinstance(item, (str, os.PathLike)) and Path(os.fspath(item)).suffix.lower() in VIDEO_SUFFIXES:
                raise SourceError(f"{os.fspath(item)}: a list can hold images only; open each video on its own")
        return ImageSource(list(source), name="images", strict=strict)
    if isinstance(source, Iterable):
        return IterableSource(source, fps=fps, strict=strict)
    raise SourceError(f"unknown source type {type(source).__name__}: give a path, folder, glob, video, camera index, "
                      "stream URL, NumPy image or an iterable of images")

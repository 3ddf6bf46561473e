"""Several sources read together as one iterator of `Frame`: `MultiSource` opens each source (source.open_source) in
a reader thread of its own and hands over their frames in turn, each tagged with its stream (Frame.stream), so that
one network run can take frames of every stream.

    with MultiSource(["cam0.mp4", "rtsp://10.0.0.5/live", 0]) as frames:
        for frame in frames:                     # every frame of a file, in order; the newest frame of a live one
            print(frame.stream, frame.index)
        print([s.error for s in frames.streams])  # None, or why the stream failed

A source that cannot be opened, or that fails while it is read, ends with a warning and its error kept
(`Stream.error`); the other streams go on. Live sources reconnect as `capture.CaptureSource` does.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..errors import ConfigError, EdgesegError, SourceError
from .capture import is_stream_url
from .frames import Frame, FrameSource, PushSource
from .source import open_source

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stream_name(source: Any, index: int) -> str:
    """The name a stream's outputs take: a file's stem (`cam0` for videos/cam0.mp4), `camera0` for camera 0, a URL's
    host and path (`10.0.0.5_live_ch1` for rtsp://user:pw@10.0.0.5:554/live/ch1: never its user or password), a
    FrameSource's name; other characters than letters, digits, '.', '-' and '_' become '_'. `stream{index}` when
    nothing is left."""
    if isinstance(source, FrameSource):
        source = source.name
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return f"camera{int(source)}"
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if is_stream_url(text):
            url = urlsplit(text)
            text = f"{url.hostname or ''}{url.path}"
        elif text.isdigit() and not Path(text).exists():
            return f"camera{text}"
        else:
            text = Path(text).stem
    else:
        text = ""
    return _UNSAFE.sub("_", text).strip("._-") or f"stream{index}"


def stream_names(sources: Sequence[Any]) -> list[str]:
    """stream_name of each source, made unique (`cam0`, `cam0-2`, ...; compared ignoring case, as some file systems
    do), so that no two streams write to the same files."""
    names: list[str] = []
    taken: set[str] = set()
    for k, source in enumerate(sources):
        base = name = stream_name(source, k)
        n = 2
        while name.lower() in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name.lower())
        names.append(name)
    return names


@dataclasses.dataclass(eq=False)
class Stream:
    """One source of a MultiSource, its counters and its fate. `index`: its place in the list (Frame.stream);
    `target`: what was given; `name`: its outputs' name (stream_names); `source`: the FrameSource once opened;
    `error`: why it stopped early (could not be opened, failed while read, or dropped), else None; `ended`: no
    more frames will come from it; `frames_taken`: frames handed on. The counters are its source's, plus the live
    frames replaced by a newer one while they waited here (in `frames_dropped`)."""

    index: int
    target: Any
    name: str
    source: FrameSource | None = None
    error: str | None = None
    ended: bool = False
    frames_taken: int = 0
    dropped_waiting: int = 0
    queue: collections.deque[Frame] = dataclasses.field(default_factory=collections.deque, repr=False)
    thread: threading.Thread | None = dataclasses.field(default=None, repr=False)

    @property
    def label(self) -> str:
        """What it reads, for messages: the source's name (a path, `camera 0`, a URL), or what was given."""
        return self.source.name if self.source is not None else str(self.target)

    @property
    def live(self) -> bool:
        return self.source is not None and self.source.live

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def fps(self) -> float | None:
        return self.source.fps if self.source is not None else None

    @property
    def frame_count(self) -> int | None:
        return self.source.frame_count if self.source is not None else None

    def _count(self, counter: str) -> int:
        return getattr(self.source, counter) if self.source is not None else 0

    frames_read = property(lambda self: self._count("frames_read"))
    frames_dropped = property(lambda self: self._count("frames_dropped") + self.dropped_waiting)
    frames_corrupt = property(lambda self: self._count("frames_corrupt"))
    reconnects = property(lambda self: self._count("reconnects"))

    def stats(self) -> dict[str, int]:
        return {"frames_read": self.frames_read, "frames_dropped": self.frames_dropped,
                "frames_corrupt": self.frames_corrupt, "reconnects": self.reconnects}


def _summed(counter: str) -> property:
    # FrameSource.__init__ zeroes its counters; a MultiSource's are the sums over its streams, so that is ignored
    return property(lambda self: sum(getattr(s, counter) for s in self.streams), lambda self, value: None)


class MultiSource(FrameSource):
    """Frames of several sources (anything open_source opens, one per item of `sources`), in turn.

    Each source is opened and read by a thread of its own into a small queue: a file (or any source that is not
    live) waits while `queue_size` of its frames wait, so every frame is handed on, in order; a camera or stream
    keeps only its newest frame, counting the one it replaces as dropped; a PushSource waits as a file does, its
    own `maxsize` deciding what it keeps meanwhile. Frames are handed over round-robin among the streams that have
    one ready, so a slow or stalled live source never holds up the files, each tagged with Frame.stream = its
    source's index. The iteration ends when every stream has ended.

    `names`: the streams' output names (default stream_names(sources)); `options`: open_source's, for every
    source. A source that cannot be opened or fails while read is closed, warned about and kept in `streams` with
    its `error`; if none of them could be opened, iterating raises SourceError once all have failed. close() stops
    every reader thread and releases every source.
    """

    frames_read = _summed("frames_read")
    frames_dropped = _summed("frames_dropped")
    frames_corrupt = _summed("frames_corrupt")
    reconnects = _summed("reconnects")

    def __init__(self, sources: Sequence[Any], *, names: Sequence[str] | None = None, queue_size: int = 1,
                 **options: Any):
        sources = list(sources)
        if not sources:
            raise ConfigError("MultiSource needs at least one source")
        if queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {queue_size}")
        names = stream_names(sources) if names is None else list(names)
        if len(names) != len(sources) or len({n.lower() for n in names}) != len(names):
            raise ConfigError(f"give one unique name per source: {len(sources)} sources, names {names}")
        super().__init__(f"{len(sources)} streams")
        self.streams = [Stream(k, source, name) for k, (source, name) in enumerate(zip(sources, names, strict=True))]
        self._options, self._queue_size = options, queue_size
        self._ready = threading.Condition()  # guards every stream's queue and state
        self._stop = threading.Event()
        self._turn = 0  # the stream asked first for the next frame
        for stream in self.streams:
            stream.thread = threading.Thread(target=self._read, args=(stream,), daemon=True,
                                             name=f"edgeseg-stream {stream.index} {stream.name}")
            stream.thread.start()

    @property
    def live(self) -> bool:  # type: ignore[override]
        return any(s.live for s in self.streams)

    @property
    def failed(self) -> list[Stream]:
        return [s for s in self.streams if s.failed]

    # ---- one thread per stream ------------------------------------------------------------------------------
    def _read(self, stream: Stream) -> None:
        try:
            source = open_source(stream.target, **self._options)  # a camera or a stream may take seconds
        except Exception as e:  # whatever it was, only this stream ends
            self._end(stream, _why(e))
            return
        with self._ready:
            stream.source = source
        if self._stop.is_set():  # close() came while it opened, too late to see it
            self._end(stream, None, source)
            return
        # a camera or stream keeps only its newest frame; a PushSource keeps what its maxsize says, so it waits as
        # a file does while its own queue holds the frames pushed meanwhile
        keep_newest = source.live and not isinstance(source, PushSource)
        try:
            for frame in source:
                frame = dataclasses.replace(frame, stream=stream.index)
                with self._ready:
                    if keep_newest:
                        if stream.queue:  # the consumer has not taken the last one: the present wins
                            stream.queue.popleft()
                            stream.dropped_waiting += 1
                    else:
                        while len(stream.queue) >= self._queue_size and not self._stopped(stream):
                            self._ready.wait()
                    if self._stopped(stream):
                        break
                    stream.queue.append(frame)
                    self._ready.notify_all()
        except Exception as e:  # likewise: the other streams go on
            if not self._stopped(stream):
                self._end(stream, f"stopped after {source.frames_read} frames: {_why(e)}", source)
                return
        self._end(stream, None, source)

    def _stopped(self, stream: Stream) -> bool:
        return self._stop.is_set() or stream.failed

    def _end(self, stream: Stream, error: str | None, source: FrameSource | None = None) -> None:
        if source is not None:
            source.close()
        with self._ready:
            if error is not None and stream.error is None:
                stream.error = error
                log.warning("stream %s (%s): %s; the other streams go on", stream.index, stream.name, error)
            stream.ended = True
            self._ready.notify_all()

    def drop(self, index: int, reason: str) -> None:
        """Stops stream `index` (its frames waiting here are dropped), with `reason` as its error: for a consumer
        that cannot go on with it (its output failed, for example). The other streams go on."""
        stream = self.streams[index]
        with self._ready:
            if stream.error is None:
                stream.error = reason
                log.warning("stream %s (%s): %s; the other streams go on", stream.index, stream.name, reason)
            stream.queue.clear()
            self._ready.notify_all()
        if stream.source is not None and stream.source.live:
            stream.source.close()  # its reader may be waiting for the next live frame

    # ---- the consumer ---------------------------------------------------------------------------------------
    def _generate(self) -> Iterator[Frame]:
        while True:
            with self._ready:
                while (frame := self._take()) is None:
                    if self._stop.is_set():
                        return
                    if all(s.ended for s in self.streams):
                        if not any(s.source is not None for s in self.streams):
                            raise SourceError(f"none of the {len(self.streams)} sources could be read: "
                                              + "; ".join(f"{s.label}: {s.error}" for s in self.streams))
                        return
                    self._ready.wait(0.5)
            yield frame

    def _take(self) -> Frame | None:
        """The next frame, round-robin from the streams that have one waiting (the lock is held)."""
        n = len(self.streams)
        for j in range(n):
            stream = self.streams[(self._turn + j) % n]
            if stream.queue:
                self._turn = (stream.index + 1) % n
                stream.frames_taken += 1
                self._ready.notify_all()  # a file's reader may be waiting for room
                return stream.queue.popleft()
        return None

    def close(self, timeout: float = 5.0) -> None:
        """Stops every reader thread (waiting up to `timeout` s in all) and releases every source."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        super().close()
        for stream in self.streams:
            if stream.source is not None and stream.source.live:
                stream.source.close()  # its reader may be waiting for the next live frame
        deadline = time.monotonic() + timeout
        for stream in self.streams:
            if stream.thread is not None:
                stream.thread.join(max(deadline - time.monotonic(), 0.0))
                if stream.thread.is_alive():  # blocked opening a camera or in a read: it ends when that returns
                    log.warning("stream %s (%s): its reader is still blocked; it ends when that returns",
                                stream.index, stream.name)

    def __repr__(self) -> str:
        return f"MultiSource({[s.name for s in self.streams]}, {self.stats()})"


def _why(error: Exception) -> str:
    """An error as a stream's reason: a project error says what it is, anything else is named."""
    return str(error) if isinstance(error, EdgesegError) else f"{type(error).__name__}: {error}"

"""A live view in the browser for a headless box: each stream's annotated video and its numbers, over HTTP.

    with LiveView(["cam0", "door"], port=8080) as view:      # listens on 127.0.0.1:8080; view.url
        ... view.add(frame.stream, frame, result, annotator, stats={"dropped": 0, "reconnects": 0}) per frame ...

The page (/) shows each stream as MJPEG (/stream/{k}.mjpg, multipart/x-mixed-replace: an <img> every browser plays
without JavaScript) beside a stats frame that reloads itself (/stats/{k}, meta refresh): fps, ms per stage
(Results.speed), objects and track ids in view, dropped frames, reconnects, viewers. /stats.json has the same numbers
for programs. The standard library's ThreadingHTTPServer serves it, one daemon thread per client.

What it costs the pipeline: nothing while nobody watches (add() only keeps references to the newest result). While
someone watches, add() draws a frame at most `fps` times a second (or reuses the one the outputs drew) and hands
over the reference; each stream's encoder thread scales it down to `width` and JPEG-encodes it once for all of its
viewers; each viewer's thread sends the newest JPEG, skipping those it was too slow for. A viewer never blocks the
pipeline, and one that goes away mid-frame ends only its own thread. No authentication: by default it listens on
127.0.0.1 only.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..inputs.frames import Frame
    from ..outputs.annotate import Annotator
    from ..results import Results

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_FPS = 10.0
DEFAULT_WIDTH = 960
JPEG_QUALITY = 80
BOUNDARY = "edgeseg-frame"
_LOCAL = ("127.0.0.1", "localhost", "::1")
_WRITE_TIMEOUT_S = 10.0  # a viewer that takes no data for this long is dropped (its thread ends)


def parse_address(text: str) -> tuple[str, int]:
    """`--view`'s value: "8080" (on 127.0.0.1), "0.0.0.0:8080", "[::1]:8080"; port 0 picks a free one.
    ConfigError when it is neither."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (sep and not host):
        raise ConfigError(f"--view takes [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080 (port 0: a free one), got {text!r}")
    return host, int(port)


def is_local(host: str) -> bool:
    """True for an address only this machine reaches (loopback)."""
    return host in _LOCAL or host.startswith("127.")


class _Channel:
    """One stream of the view: the newest result and counters (set by the pipeline thread), the frame waiting to
    be encoded and the newest JPEG (guarded by `cond`), and how many watch it."""

    def __init__(self, index: int, name: str):
        self.index, self.name = index, name
        self.cond = threading.Condition()
        self.watchers = 0
        self.due = 0.0  # perf_counter time from which the next frame may be taken
        self.pending: np.ndarray | None = None  # an annotated frame for the encoder
        self.jpeg: bytes | None = None
        self.jpeg_size = (0, 0)  # (width, height)
        self.seq = 0  # JPEGs encoded so far
        self.frames = 0  # results published so far
        self.times: deque[float] = deque(maxlen=32)  # when the last results came
        self.result: Results | None = None
        self.stats: Mapping[str, Any] = {}

    def numbers(self, now: float) -> dict[str, Any]:
        times, result = list(self.times), self.result
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        ids = [] if result is None or result.boxes.id is None else sorted(int(i) for i in result.boxes.id)
        return {"name": self.name, "frames": self.frames, "fps": round(fps, 1),
                "seconds_since_last": None if not times else round(now - times[-1], 1),
                "speed_ms": {} if result is None else {k: round(float(v), 1) for k, v in result.speed.items()},
                "objects": 0 if result is None else len(result), "track_ids": ids, "viewers": self.watchers,
                "dropped": int(self.stats.get("dropped", 0)), "reconnects": int(self.stats.get("reconnects", 0)),
                **{k: v for k, v in self.stats.items() if k not in ("dropped", "reconnects")}}


class LiveView:
    """An HTTP server showing the live annotated video and numbers of `names` streams (see the module).

    host, port: where it listens (127.0.0.1 by default; port 0 picks a free one, `url` tells which); any other
    address is reachable from other machines, unauthenticated, and start() warns. fps: the most frames a second
    each stream's video sends; width: frames wider than this are scaled down to it (aspect kept). Use as a
    context manager, or start() and close(). ConfigError for bad settings, or when it cannot listen there."""

    def __init__(self, names: Sequence[str], host: str = DEFAULT_HOST, port: int = 0, fps: float = DEFAULT_FPS,
                 width: int = DEFAULT_WIDTH, quality: int = JPEG_QUALITY):
        if not names:
            raise ConfigError("a live view needs at least one stream name")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise ConfigError(f"--view-fps must be a number above 0, got {fps!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 16:
            raise ConfigError(f"--view-width must be a whole number of pixels, at least 16, got {width!r}")
        self.host, self.port, self.fps, self.width, self.quality = host, port, float(fps), width, quality
        self.channels = [_Channel(k, str(name)) for k, name in enumerate(names)]
        self.encodes = 0  # JPEGs encoded over all streams: what watching cost
        self._closed = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._clients: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()  # guards _clients, _sockets and encodes

    @property
    def url(self) -> str:
        """The page's address (after start(): with the port it listens on)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> LiveView:
        if self._server is not None:
            return self
        if not is_local(self.host):
            log.warning("the live view on %s:%d is reachable from other machines and has no "
                        "password: anyone who reaches it sees the video (--view PORT keeps it on this machine)",
                        self.host, self.port)
        server_class = _Server6 if ":" in self.host else _Server
        try:
            self._server = server_class((self.host, self.port), _handler(self))
        except OSError as e:
            raise ConfigError(f"--view: cannot listen on {self.host}:{self.port}: {e.strerror or e} (give another "
                              "port, or 0 for a free one)") from None
        self.port = self._server.server_address[1]
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                          name="edgeseg-view-server", daemon=True)]
        self._threads += [threading.Thread(target=self._encode, args=(ch,), name=f"edgeseg-view-encode-{ch.index}",
                                           daemon=True) for ch in self.channels]
        for thread in self._threads:
            thread.start()
        return self

    def wants(self, stream: int) -> bool:
        """Whether a frame for `stream` would be shown now: someone watches it and the rate cap allows one. The
        pipeline draws a frame for the view only then."""
        channel = self.channels[stream]
        return channel.watchers > 0 and time.perf_counter() >= channel.due and not self.closed

    def publish(self, stream: int, frame_bgr: np.ndarray | None, result: Results | None = None,
                stats: Mapping[str, Any] | None = None) -> bool:
        """The newest of `stream`: its annotated frame ((H, W, 3) uint8 BGR, or None: numbers only), its result
        and counters (dropped, reconnects, ...). Keeps references, copies nothing: the frame must not be changed
        afterwards. The frame is taken only when wants(stream) (else dropped); returns whether it was."""
        channel = self.channels[stream]
        now = time.perf_counter()
        channel.frames += 1
        channel.times.append(now)
        if result is not None:
            channel.result = result
        if stats is not None:
            channel.stats = stats
        if frame_bgr is None or not self.wants(stream):
            return False
        channel.due = now + 1.0 / self.fps
        with channel.cond:
            channel.pending = frame_bgr  # one the encoder has not reached yet is replaced: only the newest counts
            channel.cond.notify_all()
        return True

    def add(self, stream: int, frame: Frame, result: Results, annotator: Annotator | None = None,
            drawn: np.ndarray | None = None, stats: Mapping[str, Any] | None = None) -> None:
        """The pipeline's hook, once per frame: publishes `result`, and when the view wants a frame, `drawn` (the
        frame as the outputs already drew it), else frame.image drawn by `annotator` (as it is without one)."""
        picture = None
        if self.wants(stream):
            picture = drawn if drawn is not None else (
                annotator.annotate(frame.image, result) if annotator is not None else frame.image)
        self.publish(stream, picture, result, stats)

    def numbers(self) -> dict[str, Any]:
        """What /stats.json serves: per stream fps, speed_ms, objects, track_ids, dropped, reconnects, viewers."""
        now = time.perf_counter()
        return {"streams": [ch.numbers(now) for ch in self.channels], "view_fps": self.fps, "encodes": self.encodes}

    def close(self) -> None:
        """Stops serving: viewers' connections end, the port is released, every thread of the view exits."""
        if self.closed:
            return
        self._closed.set()
        for channel in self.channels:
            with channel.cond:
                channel.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets, clients = list(self._sockets), list(self._clients)
        for sock in sockets:  # a viewer blocked on a slow network would hold its thread until the timeout
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in [*self._threads, *clients]:
            thread.join(timeout=5.0)

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the view's own threads

    def _encode(self, channel: _Channel) -> None:
        """Encoder of one stream: the frame handed over, scaled to `width` and JPEG-encoded once for all viewers."""
        while True:
            with channel.cond:
                channel.cond.wait_for(lambda: channel.pending is not None or self.closed)
                if self.closed:
                    return
                frame, channel.pending = channel.pending, None
            height, width = frame.shape[:2]
            if width > self.width:
                size = (self.width, max(1, round(height * self.width / width)))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                log.warning("live view: a frame of %s could not be encoded as JPEG", channel.name)
                continue
            with self._lock:
                self.encodes += 1
            with channel.cond:
                channel.jpeg, channel.jpeg_size = data.tobytes(), (frame.shape[1], frame.shape[0])
                channel.seq += 1
                channel.cond.notify_all()

    def _watch(self, channel: _Channel, handler: BaseHTTPRequestHandler) -> None:
        """One viewer of `channel`: each new JPEG as a part of a multipart/x-mixed-replace response, until the
        run ends or the viewer goes."""
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        seen = [0]  # the newest JPEG, if any, goes out at once: a new viewer sees a picture before the next frame
        with channel.cond:
            channel.watchers += 1
            channel.due = 0.0
        try:
            while not self.closed:
                with channel.cond:
                    channel.cond.wait_for(lambda: (channel.seq != seen[0] and channel.jpeg is not None)
                                          or self.closed, timeout=1.0)
                    if self.closed or channel.seq == seen[0] or channel.jpeg is None:
                        continue
                    jpeg, seen[0] = channel.jpeg, channel.seq
                handler.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                    "\r\n\r\n".encode("ascii") + jpeg + b"\r\n")
                handler.wfile.flush()
            handler.wfile.write(f"--{BOUNDARY}--\r\n".encode("ascii"))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, OSError):
            pass  # the viewer went away (or the view closed its socket): only this viewer's thread ends
        finally:
            with channel.cond:
                channel.watchers -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a viewer's thread never keeps the process alive; close() ends them anyway
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler(view: LiveView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = _WRITE_TIMEOUT_S
        server_version = "edgeseg-view"

        def setup(self) -> None:
            super().setup()
            threading.current_thread().name = "edgeseg-view-client"
            with view._lock:
                view._sockets.add(self.connection)
                view._clients.add(threading.current_thread())

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass
            with view._lock:
                view._sockets.discard(self.connection)
                view._clients.discard(threading.current_thread())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(_page(view), "text/html; charset=utf-8")
                elif path == "/stats.json":
                    self._send(json.dumps(view.numbers()).encode(), "application/json")
                elif (k := _stream_index(path, "/stream/", ".mjpg", view)) is not None:
                    view._watch(view.channels[k], self)
                elif (k := _stream_index(path, "/stats/", "", view)) is not None:
                    self._send(_stats_page(view.channels[k].numbers(time.perf_counter())), "text/html; charset=utf-8")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "not here: / is the page")
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                pass

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("live view: %s %s", self.address_string(), format % args)

    return Handler


def _stream_index(path: str, prefix: str, suffix: str, view: LiveView) -> int | None:
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    number = path[len(prefix):len(path) - len(suffix)]
    return int(number) if number.isdigit() and int(number) < len(view.channels) else None


_STYLE = ("body{font-family:sans-serif;background:#111;color:#ddd;margin:1em}h1{font-size:1.2em}"
          "section{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1.5em}h2{font-size:1em;margin:.2em 0}"
          "img{max-width:100%;background:#000}iframe{border:0;width:22em;height:20em}"
          "td{padding:.1em .6em .1em 0}td:first-child{color:#999}a{color:#8af}")


def _page(view: LiveView) -> bytes:
    sections = "".join(
        f'<section><div><h2>{html.escape(ch.name)}</h2><img src="/stream/{ch.index}.mjpg" '
        f'alt="{html.escape(ch.name)}, live"></div><iframe src="/stats/{ch.index}" '
        f'title="{html.escape(ch.name)} numbers"></iframe></section>' for ch in view.channels)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgeseg live view</title><style>{_STYLE}"
            f"</style></head><body><h1>edgeseg live view</h1>{sections}"
            "<p><a href='/stats.json'>stats.json</a></p></body></html>").encode()


def _stats_page(numbers: Mapping[str, Any]) -> bytes:
    """A stream's numbers as a table that reloads itself every second (no JavaScript)."""
    ids = numbers["track_ids"]
    rows = [("fps", f"{numbers['fps']:.1f}"), ("frames", numbers["frames"]),
            *((f"{stage} ms", f"{ms:.1f}") for stage, ms in numbers["speed_ms"].items()),
            ("objects", numbers["objects"]), ("track ids", " ".join(map(str, ids)) if ids else "-"),
            ("dropped", numbers["dropped"]), ("reconnects", numbers["reconnects"]), ("viewers", numbers["viewers"])]
    if numbers["seconds_since_last"] is not None and numbers["seconds_since_last"] > 2:
        rows.append(("last frame", f"{numbers['seconds_since_last']:.0f} s ago"))
    table = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='1'>"
            f"<style>{_STYLE}body{{margin:0}}</style></head><body><table>{table}</table></body></html>").encode()

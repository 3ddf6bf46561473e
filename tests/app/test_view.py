"""The live view (app.view, --view): MJPEG and numbers over HTTP while `edgeseg track` / `predict` run, several
viewers, one that drops, the bind address, the server gone after the run; in process: no encoding unwatched, the
rate cap, a viewer that never reads; and the page in headless Chromium where it is installed."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from edgeseg.app.synthetic import panning_frames
from edgeseg.app.view import LiveView, parse_address
from edgeseg.assets import demo_model_path
from edgeseg.errors import ConfigError
from edgeseg.outputs.video_writer import VideoWriter
from tests.helpers.common import edgeseg_cli

SIZE = (320, 240)  # (w, h)
FRAMES = 200  # long enough that the run lasts while the clients read (several seconds even on a fast machine)
TIMEOUT = 120.0  # generous: a loaded 2-core machine loads the model and compiles kernels before the first frame


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("view") / "pan.avi"
    with VideoWriter(path, 30.0, SIZE) as writer:
        for frame in panning_frames(*SIZE, objects=6, frames=FRAMES, seed=1, step=(1, 1)):
            writer.write(frame)
    return path


class Run:
    """`edgeseg ARGS --quiet` in a subprocess, its stderr read line by line in a thread (the `view: URL` line)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeseg", *map(str, args), "--quiet"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._url = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("view: "):
                self._url.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def url(self) -> str:
        assert self._url.wait(TIMEOUT), f"no 'view: URL' line; stderr: {self.stderr}"
        return next(line for line in self.lines if line.startswith("view: ")).split(" ", 1)[1]

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self) -> int:
        code = self.proc.wait(TIMEOUT)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(10)


def local(url: str) -> tuple[str, int]:
    """Where to connect for `url` (a wildcard bind is reached on the loopback)."""
    parts = urlsplit(url)
    return ("127.0.0.1" if parts.hostname in ("0.0.0.0", "::") else parts.hostname), parts.port


def get(url: str, path: str) -> bytes:
    host, port = local(url)
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=TIMEOUT) as response:
        return response.read()


class Viewer:
    """One MJPEG client of /stream/{k}.mjpg: reads parts until the stream ends (or `limit` parts, or it drops
    mid-part after `drop_after` parts), noting each decoded frame's shape, when it came and whether the run was
    still going then."""

    def __init__(self, url: str, stream: int = 0, running=lambda: True, drop_after: int | None = None):
        self.url, self.stream, self.running, self.drop_after = url, stream, running, drop_after
        self.shapes: list[tuple[int, ...]] = []
        self.times: list[float] = []
        self.during_run: list[bool] = []
        self.ended = False  # the server ended the stream (the run is over)
        self.dropped_at: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn = http.client.HTTPConnection(*local(self.url), timeout=TIMEOUT)
            conn.request("GET", f"/stream/{self.stream}.mjpg")
            sock = conn.sock  # the response takes it over from the connection
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("Content-Type").startswith(
                "multipart/x-mixed-replace; boundary=")
            boundary = response.getheader("Content-Type").split("boundary=", 1)[1]
            while True:
                line = response.fp.readline()
                if not line or line.strip() == f"--{boundary}--".encode():
                    self.ended = True
                    return
                if line.strip() != f"--{boundary}".encode():
                    continue
                headers = {}
                while (line := response.fp.readline().strip()):
                    key, _, value = line.decode().partition(":")
                    headers[key.lower()] = value.strip()
                length = int(headers["content-length"])
                if self.drop_after is not None and len(self.shapes) >= self.drop_after:
                    response.fp.read(length // 2)  # half a frame, then gone: the server is mid-write
                    sock.shutdown(socket.SHUT_RDWR)
                    response.close()
                    sock.close()
                    self.dropped_at = time.monotonic()
                    return
                data = response.fp.read(length)
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                self.shapes.append(image.shape)
                self.times.append(time.monotonic())
                self.during_run.append(self.running())
        except BaseException as e:  # reported by join(), in the test's thread
            self.error = e

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive() and self.error is None, self.error


def refused(url: str) -> bool:
    try:
        socket.create_connection(local(url), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)  # localhost unless another interface is asked for
    assert parse_address("0.0.0.0:0") == ("0.0.0.0", 0) and parse_address("[::1]:81") == ("::1", 81)
    for bad in ("", "http", "host:", ":80", "70000"):
        with pytest.raises(ConfigError, match=r"\[HOST:\]PORT"):
            parse_address(bad)


def test_track_view_serves_viewers_while_it_runs(video):
    """Two viewers at once get decoded frames of --view-width while the run goes on; a third drops mid-frame and
    disturbs neither them nor the run (exit 0); the page names the stream; the port is closed after the run."""
    run = Run("track", "--model", demo_model_path(), "--source", video, "--view", "127.0.0.1:0",
              "--view-width", "160", "--view-fps", "25")
    try:
        url = run.url()
        assert urlsplit(url).hostname == "127.0.0.1" and urlsplit(url).port > 0
        page = get(url, "/").decode()
        assert "<h2>pan</h2>" in page and '<img src="/stream/0.mjpg"' in page
        viewers = [Viewer(url, running=run.running), Viewer(url, running=run.running)]
        dropper = Viewer(url, running=run.running, drop_after=2)
        dropper.join()
        assert dropper.dropped_at is not None and len(dropper.shapes) == 2
        numbers = json.loads(get(url, "/stats.json"))["streams"]
        assert [s["name"] for s in numbers] == ["pan"] and numbers[0]["frames"] > 0
        assert "inference" in numbers[0]["speed_ms"] and numbers[0]["viewers"] >= 2
        assert run.wait() == 0, run.stderr
        for viewer in viewers:
            viewer.join()
            assert viewer.ended  # the server ended the stream with the run
            assert len(viewer.shapes) >= 3 and set(viewer.shapes) == {(120, 160, 3)}  # 320x240 scaled to 160 wide
            assert sum(viewer.during_run) >= 3  # frames arrived while the run went on, not after it
            assert any(t > dropper.dropped_at for t in viewer.times)  # and went on after the third one dropped
        assert refused(url)
    finally:
        run.kill()


def test_streams_view_names_each_stream_and_warns_off_localhost(video, tmp_path):
    """Several --source: the page names each stream, each has its own video; 0.0.0.0 warns (unauthenticated)."""
    other = Path(shutil.copy(video, tmp_path / "yard.avi"))
    run = Run("track", "--model", demo_model_path(), "--source", video, other, "--view", "0.0.0.0:0",
              "--view-width", "200")
    try:
        url = run.url()
        assert "reachable from other machines" in run.stderr and "no password" in run.stderr
        page = get(url, "/").decode()
        assert "<h2>pan</h2>" in page and "<h2>yard</h2>" in page and '<img src="/stream/1.mjpg"' in page
        viewer = Viewer(url, stream=1, running=run.running)
        assert run.wait() == 0, run.stderr
        viewer.join()
        assert viewer.shapes and set(viewer.shapes) == {(150, 200, 3)} and any(viewer.during_run)
        assert refused(url)
    finally:
        run.kill()


def test_predict_view_is_local_by_default_and_stops_with_sigterm(video):
    """`predict --view 0` on a video: 127.0.0.1, a free port, frames at the source's size (narrower than 960);
    SIGTERM mid-run ends the run (143), the viewer's stream and the server."""
    run = Run("predict", "--model", demo_model_path(), "--source", video, "--view", "0")
    try:
        url = run.url()
        assert urlsplit(url).hostname == "127.0.0.1" and "reachable from other machines" not in run.stderr
        viewer = Viewer(url, running=run.running)
        wait_until(lambda: viewer.shapes or not run.running(), TIMEOUT)
        assert run.running(), "the run ended before a frame came"
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait() == 143, run.stderr
        viewer.join()
        assert viewer.ended and set(viewer.shapes) == {(SIZE[1], SIZE[0], 3)}
        assert refused(url)
    finally:
        run.kill()
    done = edgeseg_cli("predict", "--model", demo_model_path(), "--source", "a.jpg", "--view", "0")
    assert done.returncode == 1 and "--view shows a video, camera or stream" in done.stderr
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", video, "--view", "localhost:")
    assert done.returncode == 2 and "[HOST:]PORT" in done.stderr


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_live_view_encodes_only_while_watched_and_at_most_at_its_rate():
    frame = np.full((96, 128, 3), 200, np.uint8)
    with LiveView(["a"], fps=20, width=64) as view:
        for _ in range(50):
            view.publish(0, frame, None, {"dropped": 3})
        assert view.encodes == 0 and not view.wants(0)  # nobody watches: nothing is encoded
        assert view.numbers()["streams"][0]["frames"] == 50 and view.numbers()["streams"][0]["dropped"] == 3
        viewer = Viewer(view.url)
        wait_until(lambda: view.numbers()["streams"][0]["viewers"] == 1)
        taken, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            taken += view.publish(0, frame, None)
        seconds = time.perf_counter() - start
        wait_until(lambda: view.encodes == taken)
        assert 5 <= taken <= seconds * 20 + 1  # the cap: at most fps frames a second, the rest dropped
        wait_until(lambda: len(viewer.shapes) >= 3)
        assert set(viewer.shapes) == {(48, 64, 3)}
    viewer.join()
    assert viewer.ended and refused(view.url)
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeseg-view")]  # every thread exited


def test_a_viewer_that_never_reads_blocks_nothing():
    frames = [np.random.default_rng(k).integers(0, 255, (480, 640, 3), np.uint8) for k in range(2)]  # big JPEGs
    with LiveView(["a"], fps=50, width=640) as view:
        stalled = socket.create_connection(local(view.url), timeout=TIMEOUT)
        stalled.sendall(b"GET /stream/0.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads a byte
        viewer = Viewer(view.url)
        wait_until(lambda: view.numbers()["streams"][0]["viewers"] == 2)
        slowest, start = 0.0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            t = time.perf_counter()
            view.publish(0, frames[int(t * 50) % 2], None)
            slowest = max(slowest, time.perf_counter() - t)
            time.sleep(0.005)
        wait_until(lambda: len(viewer.shapes) >= 10)  # the reading viewer got the stream meanwhile
        assert slowest < 0.25
    stalled.close()
    viewer.join()
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeseg-view")]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-headless-shell")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install "
                                              "chromium-headless-shell)")
def test_the_page_in_headless_chromium(tmp_path):
    """The page in a real browser shows each stream's annotated frame and its numbers."""
    from edgeseg import Segmenter, Tracker
    from edgeseg.app.cli import _video_annotator
    from edgeseg.inputs.frames import Frame

    size = (640, 360)
    annotator = _video_annotator("track")
    pictures, results = [], []
    with Segmenter(demo_model_path(), agnostic_nms=True, conf=0.1) as seg:
        for seed in (1, 4):
            tracker = Tracker(frame_rate=30)
            for image in panning_frames(*size, objects=6, frames=2, seed=seed):
                result = tracker.update(seg(image)[0])
            pictures.append(annotator.annotate(image, result))
            results.append(result)
    stop = threading.Event()
    with LiveView(["door", "yard"], width=480) as view:
        def publish() -> None:  # a pipeline: the same annotated frames, 30 a second
            while not stop.is_set():
                for k, (picture, result) in enumerate(zip(pictures, results, strict=True)):
                    view.add(k, Frame(picture, 0, "test"), result, drawn=picture,
                             stats={"dropped": 2 * k, "reconnects": k})
                time.sleep(1 / 30)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        shot = tmp_path / "view.png"
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--screenshot={shot}", "--window-size=1100,820", "--timeout=4000", view.url],
                              capture_output=True, text=True, timeout=TIMEOUT)
        stop.set()
        publisher.join(10)
    assert done.returncode == 0 and shot.exists(), done.stderr
    screen = cv2.imread(str(shot))
    assert screen.std() > 20  # not blank
    for picture in pictures:  # each stream's annotated frame, scaled to 480 wide, is on the page
        shown = cv2.resize(picture, (480, 270), interpolation=cv2.INTER_AREA)
        score = cv2.matchTemplate(screen, shown, cv2.TM_CCOEFF_NORMED).max()
        assert score > 0.9, score

"""Frame sources (files, images, pushed frames, a simulated live stream) and the atomic video writer.

Videos are made here with cv2.VideoWriter: 64x48, the top half of frame i filled with the value 8*i so that the
order can be checked after lossy compression, the bottom half noise so that frames are big enough to damage.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.errors import OutputError, SourceError
from edgeseg.inputs.frames import Frame, PushSource
from edgeseg.inputs.source import open_source
from edgeseg.outputs.video_writer import VideoWriter

W, H, N, FPS = 64, 48, 30, 25.0


def make_frame(i: int, rng: np.random.Generator) -> np.ndarray:
    frame = rng.integers(0, 64, (H, W, 3), dtype=np.uint8)
    frame[: H // 2] = 8 * i
    return frame


def frame_number(image: np.ndarray) -> int:
    return int(round(image[: H // 2].mean() / 8))


def make_video(path: Path, fourcc: str, n: int = N, fps: float = FPS) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for i in range(n):
        writer.write(make_frame(i, rng))
    writer.release()
    return path


@pytest.fixture(scope="module", params=[(".mp4", "mp4v"), (".avi", "MJPG")], ids=["mp4v", "mjpg"])
def video(request, tmp_path_factory) -> Path:
    suffix, fourcc = request.param
    return make_video(tmp_path_factory.mktemp("video") / f"clip{suffix}", fourcc)


def read_all(source) -> list[Frame]:
    with source:
        return list(source)


# ---- video files -------------------------------------------------------------------------------------------
def test_video_every_frame_in_order(video):
    source = open_source(video)
    frames = read_all(source)
    assert [frame_number(f.image) for f in frames] == list(range(N))
    assert [f.index for f in frames] == list(range(N))
    assert source.fps == FPS and source.size == (W, H) and not source.live
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.fps == FPS for f in frames)
    assert frames[1].pos_ms == pytest.approx(1000 / FPS)
    assert source.stats() == {"frames_read": N, "frames_dropped": 0, "frames_corrupt": 0, "reconnects": 0}


def test_truncated_video_ends_cleanly(tmp_path, caplog):
    data = make_video(tmp_path / "clip.avi", "MJPG").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    source = open_source(cut)
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        frames = read_all(source)
    numbers = [frame_number(f.image) for f in frames]
    assert 0 < len(frames) < N and numbers == list(range(len(frames)))
    assert source.frames_read + source.frames_corrupt == N  # the frames the header announced and never came
    assert "truncated" in caplog.text


def test_damaged_video_skips_bad_frames(tmp_path, caplog):
    data = bytearray(make_video(tmp_path / "clip.mp4", "mp4v").read_bytes())
    middle = len(data) * 4 // 10
    data[middle : middle + 3000] = b"\xff" * 3000
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    source = open_source(damaged)
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        frames = read_all(source)
    assert 0 < source.frames_read < N and source.frames_corrupt > 0
    assert source.frames_read + source.frames_corrupt == N
    assert frame_number(frames[-1].image) == N - 1  # reading went on after the damage
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert "unreadable" in caplog.text


def test_mp4_cut_before_its_index_cannot_open(tmp_path):
    data = make_video(tmp_path / "clip.mp4", "mp4v").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # mp4v's index (moov) is at the end: nothing can be decoded
    with pytest.raises(SourceError, match="cannot open video"):
        open_source(cut)


# ---- images, arrays, iterables -------------------------------------------------------------------------------
def test_images_folders_and_globs(tmp_path, caplog):
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), make_frame(i, rng))
    (tmp_path / "img3.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        folder = open_source(tmp_path)
        frames = read_all(folder)
    assert [frame_number(f.image) for f in frames] == [0, 1, 2]
    assert frames[0].source == str(tmp_path / "img0.png")
    assert folder.frames_read == 3 and folder.frames_corrupt == 1 and "img3.png" in caplog.text
    assert len(read_all(open_source(str(tmp_path / "img[01].png")))) == 2
    assert len(read_all(open_source(tmp_path / "img2.png"))) == 1
    gray = np.zeros((H, W), np.uint8)
    assert read_all(open_source([gray, gray]))[1].image.shape == (H, W, 3)


def test_iterable_of_arrays_skips_bad_items():
    items = (np.full((H, W, 3), i, np.uint8) if i != 2 else "junk" for i in range(5))
    source = open_source(items, fps=10.0)
    frames = read_all(source)
    assert [f.index for f in frames] == [0, 1, 3, 4] and source.frames_corrupt == 1
    assert frames[1].pos_ms == pytest.approx(100.0)


def test_bad_sources(tmp_path):
    with pytest.raises(SourceError, match="video not found"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="unknown source type"):
        open_source(tmp_path / "notes.txt")
    with pytest.raises(SourceError, match="unknown source type"):
        open_source(3.5)
    with pytest.raises(SourceError, match="open each video on its own"):
        open_source(["a.png", "b.mp4"])
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open video"):
        open_source(tmp_path / "fake.mp4")


# ---- frames pushed by the caller -----------------------------------------------------------------------------
def test_push_source_from_another_thread():
    source = PushSource(fps=30.0)

    def produce():
        for i in range(50):
            source.push(np.full((H, W, 3), i, np.uint8))
            time.sleep(0.0005)
        source.close()

    producer = threading.Thread(target=produce)
    with source:
        producer.start()
        values = [int(f.image[0, 0, 0]) for f in source]
    producer.join()
    assert values == list(range(50)) and source.frames_dropped == 0 and source.size == (W, H)
    with pytest.raises(SourceError, match="after close"):
        source.push(np.zeros((H, W, 3), np.uint8))


def test_push_source_keeps_newest_when_bounded():
    source = PushSource(maxsize=2)
    for i in range(10):
        source.push(np.full((H, W), i, np.uint8))
    source.close()
    assert [int(f.image[0, 0, 0]) for f in source] == [8, 9]
    assert source.frames_read == 10 and source.frames_dropped == 8


# ---- live sources, simulated with an injected capture ----------------------------------------------------------
class FakeCapture:
    """Stands in for cv2.VideoCapture: `frames` frames (about 1 ms apart, pixel value = frame number), then reads
    fail as a dropped connection does; `frames=None` is a capture that did not open; `frames=-1` never ends."""

    def __init__(self, frames: int | None):
        self.frames, self.k, self.released = frames, 0, False

    def isOpened(self) -> bool:
        return self.frames is not None

    def read(self):
        if self.frames != -1 and self.k >= self.frames:
            return False, None
        time.sleep(0.001)
        self.k += 1
        return True, np.full((H, W, 3), self.k % 256, np.uint8)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: W, cv2.CAP_PROP_FRAME_HEIGHT: H}.get(prop, 0.0)

    def release(self) -> None:
        self.released = True


class Factory:
    """Hands out FakeCaptures following `plan` (then captures that do not open); records the targets asked for."""

    def __init__(self, plan: list[int | None]):
        self.plan, self.made, self.targets = list(plan), [], []

    def __call__(self, target):
        self.targets.append(target)
        capture = FakeCapture(self.plan.pop(0) if self.plan else None)
        self.made.append(capture)
        return capture


def test_live_stream_newest_frame_drops_reconnects_and_ends(caplog):
    factory = Factory([200, None, None, 100])  # 200 frames, connection lost, 2 failed tries, 100 frames, gone
    source = open_source("rtsp://camera.local/stream", capture_factory=factory, reconnect_tries=3,
                         reconnect_delay=(0.005, 0.02))
    assert source.live and source.fps == 30.0 and source.size == (W, H)
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        frames = []
        with source:
            for frame in source:
                frames.append(frame)
                time.sleep(0.005)  # a consumer slower than the stream
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 299  # newest first, the last frame handed over
    assert source.frames_read == 300 and source.frames_dropped > 0
    assert len(frames) + source.frames_dropped == source.frames_read
    assert source.reconnects == 1 and len(factory.made) == 7  # open, 2 failures + success, 3 failures
    assert all(c.released for c in factory.made)
    assert "reconnected" in caplog.text and "gave up reconnecting after 3 tries" in caplog.text


def test_live_stream_without_reconnect_ends_at_first_failure(caplog):
    factory = Factory([20, 50])
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        source = open_source(0, capture_factory=factory, reconnect=False)
        frames = read_all(source)
    assert factory.targets == [0] and source.name == "camera 0"
    assert len(frames) + source.frames_dropped == 20 and source.reconnects == 0
    assert "reconnect is off" in caplog.text


def test_live_close_stops_the_reader():
    factory = Factory([-1])
    source = open_source("0", capture_factory=factory)
    assert factory.targets == [0]
    for _ in zip(range(5), source, strict=False):  # the first five frames
        pass
    start = time.monotonic()
    source.close()
    assert time.monotonic() - start < 1.0 and factory.made[0].released
    assert list(source) == []


def test_live_source_that_cannot_open():
    with pytest.raises(SourceError, match="cannot open camera 1"):
        open_source(1, capture_factory=Factory([None]))
    with pytest.raises(SourceError, match="cannot open stream rtsp://x"):
        open_source("rtsp://x", capture_factory=Factory([None]))


# ---- video writer ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_writer_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(2)
    target = tmp_path / f"out{suffix}"
    with VideoWriter(target, 12.5, (W, H)) as out:
        for i in range(20):
            out.write(make_frame(i, rng))
            assert not target.exists()  # only a temporary file until the writer closes
        assert len(list(tmp_path.iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    source = open_source(target)
    frames = read_all(source)
    assert [frame_number(f.image) for f in frames] == list(range(20))
    assert source.fps == 12.5 and source.size == (W, H)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_writer_keeps_every_pixel_of_an_odd_size(tmp_path, suffix):
    # OpenCV alone writes a 321x241 frame as 320x240, losing a column and a row; edgeseg repeats them instead
    width, height = 321, 241
    yy, xx = np.mgrid[:height, :width]
    frame = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=2).astype(np.uint8)
    with VideoWriter(tmp_path / f"odd{suffix}", FPS, (width, height)) as out:
        for _ in range(3):
            out.write(frame)
    assert out.stored_size == (322, 242)
    source = open_source(tmp_path / f"odd{suffix}")
    got = read_all(source)[0].image.astype(np.int16)
    assert source.size == (322, 242) and got.shape == (242, 322, 3)
    assert np.abs(got[:height, :width] - frame).mean() < 3  # the frame itself, through a lossy codec
    assert np.abs(got[:height, width] - frame[:, -1]).mean() < 3  # the repeated last column
    assert np.abs(got[height, :width] - frame[-1]).mean() < 3  # and row


def test_writer_keeps_what_was_written_on_ctrl_c(tmp_path):
    rng = np.random.default_rng(3)
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(target, FPS, (W, H)) as out:
            for i in range(N):
                if i == 12:
                    raise KeyboardInterrupt
                out.write(make_frame(i, rng))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert [frame_number(f.image) for f in read_all(open_source(target))] == list(range(12))


def test_writer_without_frames_leaves_nothing(tmp_path):
    with VideoWriter(tmp_path / "empty.avi", FPS, (W, H)) as out:
        pass
    assert out.close() is None and list(tmp_path.iterdir()) == []


def test_writer_bad_inputs(tmp_path):
    with pytest.raises(OutputError, match="unsupported suffix '.xyz'"):
        VideoWriter(tmp_path / "out.xyz", FPS, (W, H))
    with pytest.raises(OutputError, match="fps must be a positive number"):
        VideoWriter(tmp_path / "out.mp4", 0, (W, H))
    with pytest.raises(OutputError, match="size must be"):
        VideoWriter(tmp_path / "out.mp4", FPS, (W, 0))
    with pytest.raises(OutputError, match="cannot write .avi video with codec 'ZZZZ'"):
        VideoWriter(tmp_path / "out.avi", FPS, (W, H), fourcc="ZZZZ")
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(tmp_path / "out.avi", FPS, (W, H)) as out:
        out.write(np.zeros((H, W, 3), np.uint8))
        with pytest.raises(OutputError, match=r"frames must be uint8 \(48, 64, 3\).*got uint8 \(64, 48, 3\)"):
            out.write(np.zeros((W, H, 3), np.uint8))
    assert out.frames_written == 1 and (tmp_path / "out.avi").exists()
    with pytest.raises(OutputError, match="closed"):
        out.write(np.zeros((H, W, 3), np.uint8))

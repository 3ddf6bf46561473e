"""MultiSource: several sources read together. Every frame of every file, in order, tagged with its stream; turns
taken among the streams with a frame ready; a source that cannot be opened or fails is reported and the others go
on; a live source hands over its newest frame and never holds up the files; close() stops every reader."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.errors import ConfigError, SourceError
from edgeseg.inputs.capture import CaptureSource
from edgeseg.inputs.frames import IterableSource, PushSource
from edgeseg.inputs.source import open_source
from edgeseg.inputs.streams import MultiSource, stream_name, stream_names
from edgeseg.outputs.video_writer import VideoWriter

VIDEOS = {"a.avi": ((64, 48), 9), "b.avi": ((80, 64), 5), "c.avi": ((48, 48), 13)}  # name: ((w, h), frames)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Three MJPG videos of different sizes and lengths; frame i's top half has the value 8 * i."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for name, ((w, h), n) in VIDEOS.items():
        with VideoWriter(folder / name, 25.0, (w, h)) as writer:
            for i in range(n):
                frame = rng.integers(0, 64, (h, w, 3), dtype=np.uint8)
                frame[: h // 2] = 8 * i
                writer.write(frame)
        paths.append(folder / name)
    return paths


def arrays(n: int, value: int = 0, fail_at: int | None = None):
    """n small images of `value` + index, from a generator that raises RuntimeError at `fail_at`."""
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("the camera's driver crashed")
        yield np.full((8, 8, 3), value + i, np.uint8)


class FakeLiveCapture:
    """cv2.VideoCapture's stand-in for a camera: a frame every 2 ms (pixel value = frame number % 256), `frames` of
    them, then reads fail."""

    def __init__(self, frames: int):
        self.frames, self.k = frames, 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        if self.k >= self.frames:
            return False, None
        time.sleep(0.002)
        self.k += 1
        return True, np.full((8, 8, 3), self.k % 256, np.uint8)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 500.0, cv2.CAP_PROP_FRAME_WIDTH: 8, cv2.CAP_PROP_FRAME_HEIGHT: 8}.get(prop, 0.0)

    def release(self) -> None:
        pass


def live_camera(frames: int) -> CaptureSource:
    return CaptureSource("rtsp://cam.local/live", "rtsp://cam.local/live", live=True, reconnect=False,
                         capture_factory=lambda target: FakeLiveCapture(frames))


def test_every_frame_of_every_file_once_in_order_tagged_with_its_stream(videos):
    with MultiSource(videos) as frames:
        got = list(frames)
    for k, path in enumerate(videos):
        mine = [f for f in got if f.stream == k]
        with open_source(path) as alone:
            expected = list(alone)
        assert [f.index for f in mine] == list(range(VIDEOS[path.name][1]))
        for f, e in zip(mine, expected, strict=True):
            np.testing.assert_array_equal(f.image, e.image)
            assert f.path == str(path) and f.source == e.source
        stream = frames.streams[k]
        assert stream.error is None and stream.ended and stream.frames_taken == stream.frames_read == len(expected)
        assert stream.name == path.stem
    assert frames.frames_read == len(got) == sum(n for _, n in VIDEOS.values())
    assert frames.stats()["frames_dropped"] == 0


def test_turns_go_round_the_streams_with_a_frame_ready():
    sources = [IterableSource(arrays(6, 10 * k)) for k in range(3)]
    with MultiSource(sources, queue_size=2) as frames:
        deadline = time.monotonic() + 5
        while any(len(s.queue) < 2 for s in frames.streams) and time.monotonic() < deadline:
            time.sleep(0.01)  # each reader fills its queue, then waits for room
        got = [(f.stream, int(f.image[0, 0, 0])) for f in frames]
    assert [k for k, _ in got[:6]] == [0, 1, 2, 0, 1, 2]
    for k in range(3):
        assert [v for s, v in got if s == k] == [10 * k + i for i in range(6)]


def test_a_source_that_cannot_be_opened_or_fails_is_reported_and_the_others_go_on(videos, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    sources = [videos[0], tmp_path / "missing.mp4", corrupt, IterableSource(arrays(10, fail_at=4)), videos[1]]
    with caplog.at_level(logging.WARNING), MultiSource(sources) as frames:
        got = list(frames)
    errors = [s.error for s in frames.streams]
    assert errors[0] is None and errors[4] is None
    assert "video not found" in errors[1] and "cannot open video" in errors[2]
    assert errors[3] == "stopped after 4 frames: RuntimeError: the camera's driver crashed"
    assert [f.index for f in got if f.stream == 0] == list(range(9))
    assert [f.index for f in got if f.stream == 4] == list(range(5))
    assert [f.index for f in got if f.stream == 3] == [0, 1, 2, 3]
    assert not any(f.stream in (1, 2) for f in got)
    assert [s.index for s in frames.failed] == [1, 2, 3]
    for name in ("missing", "corrupt", "frames"):
        assert any(name in r.getMessage() and "the other streams go on" in r.getMessage() for r in caplog.records)


def test_no_source_that_can_be_read_is_a_source_error(tmp_path):
    with MultiSource([tmp_path / "x.mp4", tmp_path / "y.mp4"]) as frames, \
            pytest.raises(SourceError, match="none of the 2 sources could be read.*x.mp4.*y.mp4"):
        list(frames)
    with pytest.raises(ConfigError):
        MultiSource([])


def test_a_slow_live_source_does_not_hold_up_the_files():
    slow = PushSource("slow camera")
    stop = threading.Event()

    def push() -> None:  # a frame every 0.2 s, until the files are done
        while not stop.wait(0.2):
            slow.push(np.zeros((8, 8, 3), np.uint8))

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    files = [IterableSource(arrays(40)), IterableSource(arrays(30))]
    start = time.monotonic()
    with MultiSource([slow, *files]) as frames:
        counts = [0, 0, 0]
        for frame in frames:
            counts[frame.stream] += 1
            if counts[1:] == [40, 30]:
                files_done = time.monotonic() - start
                stop.set()
                slow.close()  # a pushed source ends when closed: the iteration then ends
    pusher.join(5)
    assert files_done < 2.0 and counts[0] <= files_done / 0.2 + 1  # the files went at their own pace
    assert all(s.error is None for s in frames.streams)


def test_a_live_source_hands_over_its_newest_frame():
    with MultiSource([live_camera(200), IterableSource(arrays(3))]) as frames:
        seen = []
        for frame in frames:
            if frame.stream == 0:
                seen.append(int(frame.image[0, 0, 0]))
                time.sleep(0.02)  # a slow consumer: ten frames arrive meanwhile
    camera = frames.streams[0]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # never an old frame after a newer one
    assert camera.frames_read == 200 and camera.frames_taken == len(seen) < 100
    assert camera.frames_dropped == camera.frames_read - camera.frames_taken  # each frame taken or counted
    assert camera.error is None and camera.live


def test_close_stops_every_reader():
    never_pushed = PushSource("idle")
    frames = MultiSource([never_pushed, live_camera(10**6), IterableSource(arrays(1000))], queue_size=1)
    first = next(frames)
    assert first.stream in (1, 2)
    started = time.monotonic()
    frames.close()
    assert time.monotonic() - started < 2.0
    assert not any(s.thread.is_alive() for s in frames.streams)
    assert list(frames) == []


def test_drop_ends_one_stream_and_the_others_go_on():
    with MultiSource([IterableSource(arrays(50)), IterableSource(arrays(20))], queue_size=1) as frames:
        got = []
        for frame in frames:
            got.append(frame.stream)
            if got.count(0) == 3:
                frames.drop(0, "its video could not be written")
    assert got.count(1) == 20 and got.count(0) == 3
    assert frames.streams[0].error == "its video could not be written" and frames.streams[1].error is None


def test_stream_names_come_from_the_source_and_are_unique(tmp_path):
    assert stream_name("videos/cam0.mp4", 0) == "cam0"
    assert stream_name(0, 0) == stream_name("0", 0) == "camera0"
    assert stream_name("rtsp://admin:secret@10.0.0.5:554/live/ch1?token=x", 0) == "10.0.0.5_live_ch1"
    assert stream_name(PushSource("door cam #2"), 3) == "door_cam_2"
    assert stream_name("imgs/*.jpg", 4) == "stream4"  # nothing left of the glob
    names = stream_names(["a/cam.mp4", "b/cam.mp4", "b/CAM.avi", 1, "1"])
    assert names == ["cam", "cam-2", "CAM-3", "camera1", "camera1-2"]
    with pytest.raises(ConfigError, match="unique name"):
        MultiSource([IterableSource(arrays(1)), IterableSource(arrays(1))], names=["x", "X"])

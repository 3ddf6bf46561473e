"""A video that cannot be written fully is an error and leaves no file: OpenCV's writer fails without a word (a full
disk, a write that goes nowhere), so VideoWriter watches its file and checks the finished one; process_video keeps
what it wrote when a run stops early (Ctrl-C, frames that change size) and says so."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import OutputError, Segmenter
from edgeseg.app.process_video import VideoReport, process_video
from edgeseg.app.synthetic import panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.inputs.frames import PushSource
from edgeseg.outputs import video_writer
from edgeseg.outputs.video_writer import CODECS, VideoWriter
from tests.helpers.common import read_back

FPS = 10.0




def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp*"))


def noise(width: int, height: int, seed: int = 0):
    """Frames of random pixels: the codec cannot compress them, so the file grows fast."""
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


class BrokenWriter:
    """Stands in for the cv2.VideoWriter inside VideoWriter, as one that fails: `write` raises cv2.error, or with
    `raises=False` takes the frame and writes nothing, as OpenCV does on a full disk; `release` leaves garbage."""

    def __init__(self, path: Path, raises: bool):
        self.path, self.raises = path, raises

    def write(self, frame: np.ndarray) -> None:
        if self.raises:
            raise cv2.error("OpenCV(5.0.0) cap_ffmpeg.cpp:219: error: (-2:Unspecified error)\nFailed to write frame")

    def release(self) -> None:
        self.path.write_bytes(b"\x00" * 100)


def broken(writer: VideoWriter, raises: bool = False) -> VideoWriter:
    writer._writer.release()
    writer._writer = BrokenWriter(writer._tmp, raises)
    return writer


# ---- the writer on its own ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_a_video_round_trips_with_the_usual_permissions(tmp_path, suffix):
    out = tmp_path / f"clip{suffix}"
    frames = list(panning_frames(161, 121, objects=3, frames=14, seed=1))  # odd: stored one pixel larger
    with VideoWriter(out, FPS, (161, 121)) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.close() == out
    assert read_back(out) == (14, (162, 122))
    usual = tmp_path / "plain.txt"
    usual.write_text("x")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(usual.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, usual.name])


def test_a_write_that_raises_is_an_output_error(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match=r"out\.mp4: frame 3 was not written \(.*Failed to write frame\)$"):
        with VideoWriter(out, FPS, (64, 48)) as writer:
            for k, frame in enumerate(noise(64, 48)):
                writer.write(frame)
                if k == 2:
                    broken(writer, raises=True)
    assert writer.frames_written == 3 and writer.close() is None
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_goes_nowhere_fails_the_check_on_close(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match=r"cannot write .*out\.mp4: the finished file does not open as a video"):
        with VideoWriter(out, FPS, (64, 48)) as writer:
            broken(writer)
            for frame in [next(noise(64, 48))] * 5:
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_found_while_writing(tmp_path, monkeypatch):
    """The file stops growing and its file system has no room left: an error at the next look, not at the end."""
    out = tmp_path / "out.mp4"
    monkeypatch.setattr(video_writer, "_free_bytes", lambda folder: 4096)
    frame = next(noise(64, 48))
    with VideoWriter(out, FPS, (64, 48)) as writer:
        broken(writer)
        for _ in range(video_writer._CHECK_EVERY):  # the first look sees the file as it was: grown
            writer.write(frame)
        with pytest.raises(OutputError, match=r"out\.mp4: no space left on the device$"):
            for _ in range(video_writer._CHECK_EVERY):
                writer.write(frame)
    assert writer.frames_written == 2 * video_writer._CHECK_EVERY
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_stops_growing_is_an_error(tmp_path):
    """Room left, but nothing reaches the file (a quota, a size limit): an error once more than FFmpeg's write block
    should have been written, counted at the fewest bytes an mp4v frame costs."""
    out = tmp_path / "out.mp4"
    frame = np.zeros((1080, 1920, 3), np.uint8)
    bound = 2 * video_writer._WRITE_BLOCK // video_writer._min_frame_bytes("mp4v", (1920, 1080))
    with pytest.raises(OutputError, match=r"out\.mp4: the file stopped growing at \d+ bytes while frames kept coming"):
        with VideoWriter(out, FPS, (1920, 1080)) as writer:
            broken(writer)
            for _ in range(bound + 3 * video_writer._CHECK_EVERY):
                writer.write(frame)
    assert bound < writer.frames_written <= bound + 2 * video_writer._CHECK_EVERY
    assert list(tmp_path.iterdir()) == []


def test_unchanging_frames_are_not_taken_for_a_stall(tmp_path):
    """A still scene costs few bytes a frame: the file grows rarely, and that is no failure. At this size the writer
    would call it a stall after about 520 frames without growth; a still frame costs 2.8 times the bound."""
    out = tmp_path / "still.mp4"
    frame = np.zeros((1080, 1920, 3), np.uint8)
    with VideoWriter(out, FPS, (1920, 1080)) as writer:
        for _ in range(600):
            writer.write(frame)
    assert read_back(out)[0] == 600


def test_an_exception_in_the_block_keeps_a_good_file_and_drops_a_bad_one(tmp_path, caplog):
    good, bad = tmp_path / "good.avi", tmp_path / "bad.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(good, FPS, (64, 48)) as writer:
            for frame in panning_frames(64, 48, objects=2, frames=7):
                writer.write(frame)
            raise KeyboardInterrupt
    assert read_back(good) == (7, (64, 48))
    with caplog.at_level(logging.ERROR, logger=video_writer.__name__):
        with pytest.raises(RuntimeError, match="the caller's own") as raised:
            with VideoWriter(bad, FPS, (64, 48)) as writer:
                broken(writer).write(next(noise(64, 48)))
                raise RuntimeError("the caller's own")
    assert raised.value.__context__ is None  # the original exception goes on, untouched
    assert "cannot write" in caplog.text and "bad.mp4: the finished file does not open as a video" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["good.avi"]


# ---- a real full disk: a 256 KiB tmpfs ---------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs mounted on a fresh folder, unmounted afterwards; skipped where mounting is not permitted."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs for the full-disk test needs root on Linux with mount(8)")
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_disk_that_fills_while_writing(small_disk):
    out = small_disk / "out.mp4"
    with pytest.raises(OutputError, match=r"out\.mp4: no space left on the device$"):
        with VideoWriter(out, FPS, (160, 120)) as writer:
            for frame in itertools.islice(noise(160, 120), 1000):
                writer.write(frame)
    assert writer.frames_written < 1000 and list(small_disk.iterdir()) == []


def test_a_disk_that_fills_as_the_video_closes(small_disk):
    """Too few frames for a look at the file while writing: FFmpeg's buffer meets the full disk in release(), and
    the check of the finished file finds it."""
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\x01" * (shutil.disk_usage(small_disk).free - 48 * 1024))
    out = small_disk / "out.mp4"
    with pytest.raises(OutputError, match=r"out\.mp4: no space left on the device$"):
        with VideoWriter(out, FPS, (160, 120)) as writer:
            for frame in itertools.islice(noise(160, 120), video_writer._CHECK_EVERY - 1):
                writer.write(frame)
    assert list(small_disk.iterdir()) == [ballast]


# ---- process_video: a run that stops early ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmenter():
    with Segmenter(demo_model_path(), agnostic_nms=True) as seg:
        yield seg


def test_frames_that_change_size_end_the_video_with_what_came_before(segmenter, tmp_path, caplog):
    source = PushSource(fps=FPS)
    for frame in panning_frames(320, 240, objects=4, frames=6, seed=2):
        source.push(frame)
    for frame in panning_frames(160, 120, objects=2, frames=3, seed=2):
        source.push(frame)
    source.close()
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING), pytest.raises(OutputError) as raised:
        process_video(segmenter, source, save=out, progress=False)
    assert str(raised.value) == (f"cannot go on writing {out}: the video changed size at frame 6 (320x240 -> 160x120); "
                                 f"the 6 frames before it are in {out}")
    assert read_back(out) == (6, (320, 240)) and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert f"video in {out} (partial: the 6 frames written before the run stopped)" in caplog.text


def test_ctrl_c_in_the_main_thread_finishes_and_checks_the_video(segmenter, tmp_path, caplog):
    """How the command stops on SIGTERM too: a KeyboardInterrupt in the main thread, here from on_result."""
    source = PushSource(fps=FPS)
    for frame in panning_frames(320, 240, objects=4, frames=12, seed=3):
        source.push(frame)
    source.close()
    out = tmp_path / "stopped.mp4"

    def stop_at_the_fourth(frame, result):
        if frame.index == 3:
            raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        process_video(segmenter, source, save=out, progress=False, on_result=stop_at_the_fourth)
    assert read_back(out) == (4, (320, 240))
    assert temporaries(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["stopped.mp4"]
    assert "4 frames from push" in caplog.text  # the fourth was written before on_result stopped the run
    assert "video in" in caplog.text and "(partial: the 4 frames written before the run stopped)" in caplog.text


def test_the_report_says_when_the_video_is_partial():
    report = VideoReport("cam", 3, 3, 0, 0, 0, 1.0, 0, Path("out.mp4"), 0)
    assert report.format() == "3 frames from cam at 3.0 fps; video in out.mp4"
    partial = VideoReport("cam", 3, 3, 0, 0, 0, 1.0, 0, Path("out.mp4"), 0, partial_frames=4)
    assert partial.format().endswith("video in out.mp4 (partial: the 4 frames written before the run stopped)")

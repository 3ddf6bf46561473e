"""Videos through the whole chain: segment, track, annotate, write; the track and predict commands on a video."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import OutputError, Segmenter
from edgeseg.app.process_video import process_video
from edgeseg.app.synthetic import panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.inputs.source import is_video_source
from edgeseg.outputs.video_writer import VideoWriter
from edgeseg.tracking import Tracker
from tests.helpers.common import edgeseg_cli

FPS = 12.0
SIZE = (480, 320)  # (w, h)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """24 frames of a panning synthetic scene with 8 shapes, MJPG in .avi (exact frame count when read back)."""
    path = tmp_path_factory.mktemp("video") / "pan.avi"
    with VideoWriter(path, FPS, SIZE) as writer:
        for frame in panning_frames(*SIZE, objects=8, frames=24, seed=3):
            writer.write(frame)
    return path


def read_video(path: Path) -> tuple[int, tuple[int, int], float]:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, size, fps


@pytest.fixture(scope="module")
def segmenter():
    with Segmenter(demo_model_path(), agnostic_nms=True) as seg:
        yield seg


def test_is_video_source():
    assert is_video_source("a.mp4") and is_video_source("rtsp://cam/1") and is_video_source(0) and is_video_source("0")
    assert not is_video_source("a.jpg") and not is_video_source("images/") and not is_video_source(np.zeros(3))


def test_tracked_video_keeps_ids_and_writes_every_frame(segmenter, video, tmp_path):
    results = []
    out = tmp_path / "tracked.mp4"
    report = process_video(segmenter, video, tracker=Tracker(frame_rate=FPS), save=out, progress=False,
                           isolate_dir=tmp_path / "tracks", on_result=lambda frame, r: results.append((frame.index, r)))
    assert report.frames == 24 and [i for i, _ in results] == list(range(24))
    assert read_video(out) == (24, SIZE, FPS)
    # the camera pans: the same shapes stay in view, so after the first frames the ids settle and stay
    settled = [set(r.boxes.id.tolist()) for _, r in results[2:]]
    assert settled[0] and len(set.union(*settled)) <= len(settled[0]) + 3
    every_id = {i for _, r in results for i in r.boxes.id.tolist()}
    assert report.tracks == len(every_id)
    folders = sorted(p.name for p in (tmp_path / "tracks").iterdir())
    assert folders and report.cutouts > 24
    assert {int(f.rsplit("-", 1)[1]) for f in folders} <= every_id  # {class}-{id}: one folder per track


def test_results_equal_frame_by_frame_prediction(segmenter, video):
    frames = []
    process_video(segmenter, video, progress=False, on_result=lambda frame, r: frames.append((frame.image, r)))
    for image, r in frames[:6]:
        alone = segmenter.predict(image)[0]
        np.testing.assert_array_equal(alone.boxes.xyxy, r.boxes.xyxy)


def test_ctrl_c_keeps_a_playable_video(segmenter, video, tmp_path):
    out = tmp_path / "stopped.avi"

    def stop_after_five(frame, result):
        if frame.index == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_video(segmenter, video, save=out, progress=False, on_result=stop_after_five)
    count, size, _ = read_video(out)
    assert count == 5 and size == SIZE and [p.name for p in tmp_path.iterdir()] == ["stopped.avi"]


def test_truncated_video_ends_cleanly(segmenter, video, tmp_path):
    cut = tmp_path / "cut.avi"
    data = video.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    report = process_video(segmenter, cut, save=tmp_path / "out.avi", progress=False)
    assert 0 < report.frames < 24
    assert read_video(tmp_path / "out.avi")[0] == report.frames


def test_the_video_being_read_is_never_replaced(segmenter, video, tmp_path):
    """`predict --source clip.avi --save-dir .` or `--save` naming the source: the original would be renamed over."""
    source = Path(shutil.copy(video, tmp_path / "pan.avi"))
    with pytest.raises(OutputError, match="the video being read"):
        process_video(segmenter, source, save=tmp_path / "." / "pan.avi", progress=False)
    assert source.read_bytes() == video.read_bytes()


def test_track_and_predict_commands_on_a_video(video, tmp_path):
    model = demo_model_path()
    done = edgeseg_cli("track", "--model", model, "--source", video, "--save", tmp_path / "t.mp4",
                       "--isolate-dir", tmp_path / "cutouts", "--agnostic-nms")
    assert done.returncode == 0, done.stderr
    assert "24 frames" in done.stdout and "tracks" in done.stdout and "fps" in done.stderr  # progress: frames, fps
    assert read_video(tmp_path / "t.mp4") == (24, SIZE, FPS)
    assert any((tmp_path / "cutouts").iterdir())
    done = edgeseg_cli("predict", "--model", model, "--source", video, "--save-dir", tmp_path / "pred", "--quiet")
    assert done.returncode == 0, done.stderr
    assert read_video(tmp_path / "pred" / "pan.mp4") == (24, SIZE, FPS)


def test_track_command_errors(video, tmp_path):
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", tmp_path / "none.mp4")
    assert done.returncode == 1 and "edgeseg: error: video not found" in done.stderr
    # two sources are two streams (tests/app/test_streams.py); with them, --save must name a folder
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", video, video, "--save", tmp_path / "x.mp4")
    assert done.returncode == 1 and "edgeseg: error:" in done.stderr and not (tmp_path / "x.mp4").exists()
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", video, "--save", tmp_path / "x.gif")
    assert done.returncode == 1 and "edgeseg: error:" in done.stderr and not (tmp_path / "x.gif").exists()


def test_a_tracks_cutouts_stay_in_one_folder_named_by_the_class_it_ended_with(tmp_path):
    """A voting tracker's class for a track can change during a run (boxes.track_cls); its cut-outs still go to one
    folder, renamed at the end to the class the track ended with."""
    import dataclasses

    from edgeseg.app.process_video import TrackCutouts
    from edgeseg.results import Boxes, Masks, Results

    def tracked(track_cls: list[int]) -> Results:
        xyxy = np.array([[0, 0, 4, 4], [5, 5, 9, 9]], np.float32)
        boxes = Boxes(xyxy, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int64), (10, 10),
                      id=np.array([4, 7], np.int64), track_cls=np.array(track_cls, np.int64))
        masks = Masks((np.ones((4, 4), np.uint8), np.ones((4, 4), np.uint8)), xyxy[:, :2].astype(np.int64), (10, 10))
        return Results(np.full((10, 10, 3), 200, np.uint8), None, {0: "circle", 1: "hexagon", 2: "star"}, boxes, masks)

    cutouts = TrackCutouts(tmp_path)
    for frame, votes in enumerate([[0, 1], [1, 1], [1, 2], [1, 1]]):
        assert cutouts.add(tracked(votes), frame) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circle-4", "hexagon-7"]  # the first label, all run long
    cutouts.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hexagon-4", "hexagon-7"]
    assert sorted(p.name for p in (tmp_path / "hexagon-4").iterdir()) == [f"{k:06d}.png" for k in range(4)]
    # without a vote, the detector's class names the folder
    plain = tracked([0, 1])
    plain = dataclasses.replace(plain, boxes=dataclasses.replace(plain.boxes, track_cls=None))
    other = TrackCutouts(tmp_path / "plain")
    other.add(plain, 0)
    other.finish()
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["circle-4", "hexagon-7"]

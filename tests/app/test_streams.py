"""Many streams in one process: Segmenter.track_streams, process_streams and `edgeseg track` with several sources.

Each stream gets what it would get alone (every frame once, in order, the ids Segmenter.track gives it), with a
fixed batch-1 model and with a dynamic-batch model whose runs mix streams; a bad source among good ones is
reported while the others finish; one video and one cut-out folder per stream; no output replaces an input; a
slow live source does not hold up the files.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg import ConfigError, OutputError, Segmenter
from edgeseg.app.process_streams import process_streams
from edgeseg.app.synthetic import panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.inputs.frames import IterableSource, PushSource
from edgeseg.outputs.annotate import BoxAnnotator, MaskAnnotator, compose
from edgeseg.outputs.video_writer import VideoWriter
from tests.helpers.common import edgeseg_cli, read_back

FPS = 12.0
TRACKER = "bytetrack.yaml"  # Ultralytics' own: fixed settings, whatever becomes of the default tracker file
# name: ((w, h), frames). The fixed model's videos differ in shape; the dynamic model's are square: a run of frames of
# one shape is letterboxed to the smallest multiple of 32 that holds them (Ultralytics' rule for dynamic shapes), a
# run that mixes shapes to the full input, so only square frames meet the network the same way alone and mixed.
SHAPED = {"wide.avi": ((320, 240), 10), "small.avi": ((240, 160), 6), "tall.avi": ((192, 256), 13)}
SQUARE = {"sq320.avi": ((320, 320), 6), "sq256.avi": ((256, 256), 4), "sq384.avi": ((384, 384), 9)}


def make_videos(folder: Path, spec: dict) -> list[Path]:
    paths = []
    for seed, (name, (size, n)) in enumerate(spec.items()):
        with VideoWriter(folder / name, FPS, size) as writer:
            for frame in panning_frames(*size, objects=6, frames=n, seed=seed):
                writer.write(frame)
        paths.append(folder / name)
    return paths




@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    return make_videos(tmp_path_factory.mktemp("shaped"), SHAPED)


@pytest.fixture(scope="module")
def segmenter():
    with Segmenter(demo_model_path()) as seg:
        yield seg


def per_stream(pairs, n: int) -> list[list]:
    streams: list[list] = [[] for _ in range(n)]
    for k, result in pairs:
        streams[k].append(result)
    return streams


@pytest.mark.parametrize("kind", ["fixed batch 1", "dynamic batch 4"])
def test_each_stream_gets_the_ids_track_gives_it_alone(kind, request, tmp_path_factory):
    if kind == "fixed batch 1":
        seg, paths = request.getfixturevalue("segmenter"), request.getfixturevalue("videos")
    else:
        seg = Segmenter(request.getfixturevalue("shapes_dynamic_onnx"), batch=4)
        request.addfinalizer(seg.close)
        paths = make_videos(tmp_path_factory.mktemp("square"), SQUARE)
    alone = [seg.track(p, tracker=TRACKER) for p in paths]
    batches: list[list[int]] = []  # the streams of each network run's frames
    batched = seg._batches

    def recorded(frames):
        for batch in batched(frames):
            batches.append([f.stream for f in batch])
            yield batch

    seg._batches = recorded
    try:
        together = per_stream(seg.track_streams(paths, tracker=TRACKER), len(paths))
    finally:
        del seg._batches
    assert sum(len(b) for b in batches) == sum(len(a) for a in alone)
    if seg.batch_size > 1:
        assert any(len(set(b)) > 1 for b in batches)  # runs of frames from several streams
    assert max(map(len, batches)) == seg.batch_size
    for path, mine, own in zip(paths, together, alone, strict=True):
        assert len(own) == (SHAPED | SQUARE)[path.name][1]
        assert sum(len(r) for r in own) > 0
        for r, expected in zip(mine, own, strict=True):  # every frame once, in order, tracked as alone
            assert r.path == expected.path == str(path)
            np.testing.assert_array_equal(r.boxes.id, expected.boxes.id)
            np.testing.assert_array_equal(r.boxes.xyxy, expected.boxes.xyxy)
            np.testing.assert_array_equal(r.boxes.cls, expected.boxes.cls)


def test_persist_goes_on_with_each_streams_tracker(segmenter, videos):
    first = per_stream(segmenter.track_streams(videos[:2], tracker=TRACKER), 2)
    again = per_stream(segmenter.track_streams(videos[:2], tracker=TRACKER, persist=True), 2)
    for before, after in zip(first, again, strict=True):
        seen = {i for r in before for i in r.boxes.id.tolist()}
        assert seen and max(i for r in after for i in r.boxes.id.tolist()) > max(seen)  # ids go on, none reused
    with pytest.raises(ConfigError, match="kept trackers were made from"):
        segmenter.track_streams(videos, tracker="botsort.yaml", persist=True)
    with pytest.raises(ConfigError, match="list of sources"):
        segmenter.track_streams(str(videos[0]))


def test_one_video_and_one_cutout_folder_per_stream(segmenter, videos, tmp_path):
    seen: list[tuple[int, int]] = []
    drawn = compose(MaskAnnotator(color_by="track"), BoxAnnotator(color_by="track"))
    report = process_streams(segmenter, videos, tracker=TRACKER, annotator=drawn, save_dir=tmp_path / "out",
                             isolate_dir=tmp_path / "cut", progress=False,
                             on_result=lambda frame, r: seen.append((frame.stream, frame.index)))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{p.stem}.mp4" for p in videos)
    for k, (path, stream) in enumerate(zip(videos, report.streams, strict=True)):
        size, n = SHAPED[path.name]
        assert [i for s, i in seen if s == k] == list(range(n))
        assert read_back(tmp_path / "out" / f"{path.stem}.mp4") == (n, size)
        assert stream.name == path.stem and stream.frames == stream.frames_read == n and stream.error is None
        assert stream.video == tmp_path / "out" / f"{path.stem}.mp4"
        folders = list((tmp_path / "cut" / path.stem).iterdir())
        assert stream.tracks > 0 and folders
        assert sum(len(list(f.iterdir())) for f in folders) == stream.cutouts > 0
    assert report.frames == len(seen) and not report.failed and report.fps > 0
    assert report.format().startswith(f"{len(seen)} frames from 3 streams at ")


def test_a_bad_source_among_good_ones_is_reported_and_the_others_finish(videos, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16)
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", videos[0], tmp_path / "missing.mp4",
                       "--source", corrupt, "--source", videos[1], "--save", tmp_path / "out",
                       "--isolate-dir", tmp_path / "cut")
    assert done.returncode == 1, done.stderr
    assert "edgeseg: warning: 2 of 4 streams failed" in done.stderr
    assert "missing: failed: video not found" in done.stdout and "corrupt: failed: cannot open video" in done.stdout
    assert f"{videos[0].stem}: 10 frames at" in done.stdout and f"{videos[1].stem}: 6 frames at" in done.stdout
    assert f"{videos[0].stem} " in done.stderr and " fps" in done.stderr  # the progress line, per stream
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{p.stem}.mp4" for p in videos[:2])
    assert read_back(tmp_path / "out" / f"{videos[1].stem}.mp4") == (6, SHAPED[videos[1].name][0])
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == sorted([videos[0].stem, videos[1].stem])


def test_outputs_never_replace_inputs(segmenter, videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    inside = make_videos(out, {"wide.mp4": ((320, 240), 3)})[0]  # --save out would write out/wide.mp4 over it
    original = inside.read_bytes()
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", inside, videos[1], "--save", out)
    assert done.returncode == 1 and "is an input of this run" in done.stderr, done.stderr
    done = edgeseg_cli("track", "--model", demo_model_path(), "--source", *videos[:2], "--save", tmp_path / "x.mp4")
    assert done.returncode == 1 and "names a folder" in done.stderr and not (tmp_path / "x.mp4").exists()
    with pytest.raises(OutputError, match="is an input"):
        process_streams(segmenter, [videos[0], inside], save_dir=out, progress=False)
    assert inside.read_bytes() == original and [p.name for p in out.iterdir()] == ["wide.mp4"]


def test_a_slow_live_source_does_not_hold_up_the_files(segmenter, videos):
    live = PushSource("door camera", maxsize=1)
    stop = threading.Event()

    def push() -> None:  # a frame every 0.3 s until the files are done (30 s at most)
        for frame in panning_frames(320, 240, objects=6, frames=100, seed=5):
            if stop.wait(0.3):
                break
            live.push(frame)
        live.close()

    threading.Thread(target=push, daemon=True).start()
    start = time.monotonic()
    counts = [0, 0, 0]
    for k, _ in segmenter.track_streams([live, *videos[:2]], tracker=TRACKER):
        counts[k] += 1
        if counts[1:] == [10, 6]:
            files_done = time.monotonic() - start
            stop.set()
    assert files_done < 10 and counts[0] <= files_done / 0.3 + 2  # the files went at the network's pace


def test_ctrl_c_keeps_each_streams_video(segmenter, videos, tmp_path):
    written = [0, 0, 0]

    def stop_after_twelve(frame, result):
        written[frame.stream] += 1
        if sum(written) == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_streams(segmenter, videos, save_dir=tmp_path, progress=False, on_result=stop_after_twelve)
    for path, n in zip(videos, written, strict=True):
        assert read_back(tmp_path / f"{path.stem}.mp4") == (n, SHAPED[path.name][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{p.stem}.mp4" for p in videos)  # no temporaries


def test_a_stream_whose_source_or_video_fails_ends_alone(segmenter, videos, tmp_path):
    frames = [*panning_frames(320, 240, objects=6, frames=4), *panning_frames(240, 320, objects=6, frames=4)]

    def flaky():  # a source that breaks after three good frames
        yield from panning_frames(256, 192, objects=6, frames=3, seed=2)
        raise RuntimeError("the capture card stopped answering")

    report = process_streams(segmenter, [IterableSource(frames, name="resized"), IterableSource(flaky(), name="flaky"),
                                         videos[1]], save_dir=tmp_path, progress=False)
    resized, broken, good = report.streams
    assert "changed size at frame 4" in resized.error and resized.frames == 4
    assert read_back(tmp_path / "resized.mp4") == (4, (320, 240))  # the frames before the change, kept
    assert broken.error == "stopped after 3 frames: RuntimeError: the capture card stopped answering"
    assert broken.frames == 3 and read_back(broken.video) == (3, (256, 192))  # what it read before is all there
    assert good.error is None and good.frames == 6 and read_back(good.video)[0] == 6
    assert [s.name for s in report.failed] == ["resized", "flaky"]


def test_stream_outputs_named_from_the_source(segmenter, videos, tmp_path):
    twice = tmp_path / "again" / videos[1].name
    twice.parent.mkdir()
    shutil.copy(videos[1], twice)
    report = process_streams(segmenter, [videos[1], twice], save_dir=tmp_path / "out", progress=False)
    assert [s.name for s in report.streams] == ["small", "small-2"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small-2.mp4", "small.mp4"]

"""The Segmenter calls users port from Ultralytics: predict with per-call settings, stream=True and save=True;
track frame by frame with persist=True, and over a video; a .pt checkpoint given as the model."""

from __future__ import annotations

import importlib.util
import shutil
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, ModelFormatError, OutputError, PredictConfig, Segmenter
from edgeseg.app.synthetic import make_scene, panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.config import TRACK_CONF
from edgeseg.outputs.annotate import plot
from edgeseg.outputs.video_writer import VideoWriter
from edgeseg.tracking import Tracker, TrackerConfig
from tests.helpers.common import SHAPES_PT

BYTETRACK = "bytetrack.yaml"  # Ultralytics' ByteTrack, id for id: what these tests compare with Tracker()
SIZE = (480, 320)  # (w, h) of the video frames


@pytest.fixture(scope="module")
def seg():
    with Segmenter(demo_model_path()) as seg:
        yield seg


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    return [make_scene(640, 480, 12, seed).image for seed in range(3)]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return list(panning_frames(*SIZE, objects=8, frames=12, seed=3))


@pytest.fixture(scope="module")
def video(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("video") / "pan.avi"  # MJPG: the frame count is exact when read back
    with VideoWriter(path, 12.0, SIZE) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture
def png_folder(tmp_path, scenes) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for k, image in enumerate(scenes):
        cv2.imwrite(str(folder / f"scene{k}.png"), image)
    return folder


def same_detections(a, b) -> None:
    np.testing.assert_array_equal(a.boxes.xyxy, b.boxes.xyxy)
    np.testing.assert_array_equal(a.boxes.conf, b.boxes.conf)
    np.testing.assert_array_equal(a.boxes.cls, b.boxes.cls)


# ---------------------------------------------------------------- predict: per-call settings


@pytest.mark.parametrize("settings", [dict(conf=0.6), dict(iou=0.3), dict(classes=[1, 3]), dict(classes=2),
                                      dict(max_det=3), dict(agnostic_nms=True)])
def test_per_call_settings_give_what_a_segmenter_made_with_them_gives(seg, scenes, settings):
    before = seg.config
    reference = Segmenter(demo_model_path(), **settings)
    for image in scenes:
        same_detections(seg.predict(image, **settings)[0], reference.predict(image)[0])
        same_detections(seg(image, **settings)[0], reference(image)[0])
    assert seg.config is before and seg.config == PredictConfig()  # never changed by a call


def test_per_call_settings_take_effect(seg, scenes):
    everything = seg.predict(scenes)
    assert sum(len(r) for r in everything) > 10
    assert all((r.boxes.conf > 0.6).all() for r in seg.predict(scenes, conf=0.6))
    assert all(set(r.boxes.cls.tolist()) <= {1, 3} for r in seg.predict(scenes, classes=[1, 3]))
    assert all(len(r) <= 2 for r in seg.predict(scenes, max_det=2))
    for r, full in zip(seg.predict(scenes), everything, strict=True):  # the next call is back to the settings
        same_detections(r, full)


def test_call_config_is_a_new_frozen_config(seg):
    cfg = seg.call_config(conf=0.5, classes=(0, 2), max_det=10)
    assert cfg is not seg.config and (cfg.conf, cfg.classes, cfg.max_det) == (0.5, (0, 2), 10)
    assert cfg.iou == seg.config.iou and cfg.providers == seg.config.providers
    assert seg.call_config() is seg.config and seg.call_config(conf=seg.config.conf) is seg.config
    with pytest.raises(AttributeError):
        cfg.conf = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("settings, message", [
    (dict(conf=1.5), "conf must be a number in"),
    (dict(iou=-0.1), "iou must be a number in"),
    (dict(max_det=0), "max_det must be a positive integer"),
    (dict(classes=[0, 9]), r"classes \[9\] are not classes of shapes11n-seg-320.onnx: it has 5"),
    (dict(classes=[]), "classes is empty"),
    (dict(agnostic_nms="yes"), "agnostic_nms must be true or false"),
    (dict(stream="yes"), "stream must be True or False"),
    (dict(save=1), "save must be True or False"),
])
def test_bad_per_call_settings_are_config_errors(seg, scenes, settings, message):
    with pytest.raises(ConfigError, match=message):
        seg.predict(scenes[0], **settings)
    assert seg.config == PredictConfig()


def test_per_call_settings_on_the_gpu_path_are_refused_for_now(seg, scenes):
    # the GPU post-processing holds its own settings: a per-call change must not be silently ignored there
    seg._gpu = object()
    try:
        with pytest.raises(ConfigError, match="CPU path only for now; with device='cuda'"):
            seg.call_config(conf=0.5)
        assert seg.call_config(conf=seg.config.conf) is seg.config  # no change: nothing to refuse
    finally:
        seg._gpu = None


def test_positional_settings_are_refused(seg, scenes):
    with pytest.raises(TypeError):
        seg.predict(scenes[0], 0.5)  # type: ignore[misc]


# ---------------------------------------------------------------- predict: stream and save


def test_stream_true_returns_a_generator_of_the_same_results(seg, scenes):
    results = seg.predict(scenes, stream=True, conf=0.5)
    assert isinstance(results, types.GeneratorType)
    for a, b in zip(results, seg.predict(scenes, conf=0.5), strict=True):
        same_detections(a, b)
    assert isinstance(seg(scenes, stream=True), types.GeneratorType)


def test_save_writes_annotated_images_in_numbered_run_folders(png_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seg = Segmenter(demo_model_path())
    results = seg.predict(png_folder, save=True)
    out = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in out.iterdir()) == ["scene0.png", "scene1.png", "scene2.png"]
    for r in results:
        np.testing.assert_array_equal(cv2.imread(str(out / Path(r.path).name)), plot(r))
    seg.predict(png_folder / "scene0.png", save=True)  # the same Segmenter keeps its folder, as Ultralytics does
    assert not (tmp_path / "runs" / "predict2").exists()
    Segmenter(demo_model_path()).predict(png_folder / "scene0.png", save=True)  # a new one takes a new folder
    assert [p.name for p in (tmp_path / "runs" / "predict2").iterdir()] == ["scene0.png"]
    tracked = Segmenter(demo_model_path()).track(png_folder / "scene1.png", save=True)
    assert tracked[0].boxes.id is not None
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "runs" / "track" / "scene1.png")), plot(tracked[0]))


def test_save_dir_arrays_and_stream(seg, scenes, tmp_path):
    out = tmp_path / "out"
    results = seg.predict(scenes[:2], save=True, save_dir=out, stream=True)
    assert not out.exists() or not any(out.iterdir())  # nothing runs before the generator is read
    first = next(results)
    assert [p.name for p in out.iterdir()] == [first.path]  # image0.jpg, ...: the names arrays get
    rest = list(results)
    assert sorted(p.name for p in out.iterdir()) == sorted([first.path, rest[0].path])


def test_save_never_replaces_an_input(seg, png_folder, tmp_path):
    before = {p.name: p.read_bytes() for p in png_folder.iterdir()}
    with pytest.raises(OutputError, match="which its output would replace"):
        seg.predict(png_folder, save=True, save_dir=png_folder)
    with pytest.raises(OutputError, match="is a file"):
        seg.predict(png_folder, save=True, save_dir=png_folder / "scene0.png")
    assert {p.name: p.read_bytes() for p in png_folder.iterdir()} == before
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(png_folder / "scene0.png", other / "scene0.png")
    with pytest.raises(OutputError, match="would write files of the same names"):
        seg.predict([png_folder / "scene0.png", other / "scene0.png"], save=True, save_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_save_with_a_video_names_frames_by_index(seg, video, tmp_path):
    results = seg.predict(video, save=True, save_dir=tmp_path / "out")
    assert len(results) == 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"pan_{k}.jpg" for k in range(12))


# ---------------------------------------------------------------- track


def test_track_frame_by_frame_with_persist_gives_the_trackers_ids(seg, frames):
    seg.track(frames[0], tracker=BYTETRACK)  # persist=False: a fresh tracker, which later persist=True calls continue
    tracker = Tracker()
    reference = [tracker.update(seg(frame, conf=TRACK_CONF)[0]) for frame in frames]
    fresh = Segmenter(demo_model_path())
    tracked = [fresh.track(frame, persist=True, tracker=BYTETRACK)[0] for frame in frames]
    assert sum(len(r) for r in tracked) > 40
    for a, b in zip(tracked, reference, strict=True):
        same_detections(a, b)
        np.testing.assert_array_equal(a.boxes.id, b.boxes.id)
        assert a.boxes.id.dtype == np.int64 and "track" in a.speed
    # the ids carry over: objects of the last frame were first seen frames ago, not numbered afresh
    assert len({int(i) for r in tracked for i in r.boxes.id}) < sum(len(r) for r in tracked) / 4


def test_persist_false_starts_a_fresh_tracker_each_call(seg, frames):
    for frame in frames[:4]:
        (r,) = seg.track(frame, tracker=BYTETRACK)
        expected = Tracker().update(seg(frame, conf=TRACK_CONF)[0])
        np.testing.assert_array_equal(r.boxes.id, expected.boxes.id)
        assert sorted(r.boxes.id.tolist()) == list(range(1, len(r) + 1))
    # persist=True continues the tracker the last persist=False call started
    (r,) = seg.track(frames[4], persist=True, tracker=BYTETRACK)
    tracker = Tracker()
    tracker.update(seg(frames[3], conf=TRACK_CONF)[0])
    np.testing.assert_array_equal(r.boxes.id, tracker.update(seg(frames[4], conf=TRACK_CONF)[0]).boxes.id)


def test_track_a_video_in_order_as_a_list_or_a_generator(seg, video):
    tracker = Tracker()
    reference = [tracker.update(r) for r in seg.predict(video, conf=TRACK_CONF)]
    tracked = seg.track(video, tracker=BYTETRACK)
    assert len(tracked) == len(reference) == 12
    for a, b in zip(tracked, reference, strict=True):
        np.testing.assert_array_equal(a.boxes.id, b.boxes.id)
    streamed = seg.track(video, stream=True, tracker=BYTETRACK)
    assert isinstance(streamed, types.GeneratorType)
    for a, b in zip(streamed, reference, strict=True):
        np.testing.assert_array_equal(a.boxes.id, b.boxes.id)


def test_track_runs_the_detector_at_ultralytics_track_conf_unless_given_one(frames):
    """As Ultralytics' model.track: conf 0.1 when neither the call nor the Segmenter set one, so the tracker's second
    association sees the low-score detections; a Segmenter's own conf is kept."""
    from edgeseg.config import PredictConfig

    with Segmenter(demo_model_path()) as default, Segmenter(demo_model_path(), conf=0.25) as given:
        kept = np.concatenate([default.track(frame, persist=True, tracker=BYTETRACK)[0].boxes.conf for frame in frames])
        # low-score detections continue tracks (the second association), none below the threshold
        assert (kept < 0.25).sum() > 5 and kept.min() > TRACK_CONF
        assert all(given.track(frame, persist=True, tracker=BYTETRACK)[0].boxes.conf.min() >= 0.25 for frame in frames)
        from_config = Segmenter.from_config(demo_model_path(), PredictConfig())
        assert from_config.track(frames[0])[0].boxes.conf.min() >= 0.25


def test_track_takes_predicts_settings_and_a_tracker_config(seg, frames):
    (r,) = seg.track(frames[0], conf=0.6, classes=[1, 2, 3])
    assert (r.boxes.conf > 0.6).all() and set(r.boxes.cls.tolist()) <= {1, 2, 3}
    strict_births = TrackerConfig(new_track_thresh=0.99, track_high_thresh=0.99)
    (r,) = seg.track(frames[0], tracker=strict_births)
    assert len(r) == 0 and r.boxes.id.shape == (0,)


def test_a_kept_tracker_is_not_switched_silently(seg, frames, tmp_path):
    seg.track(frames[0], tracker="bytetrack.yaml")
    seg.track(frames[1], persist=True, tracker=Path("bytetrack.yaml"))  # the same file, spelled as a Path
    other = tmp_path / "slow.yaml"
    other.write_text("tracker_type: bytetrack\ntrack_buffer: 60\n")
    with pytest.raises(ConfigError, match="call track\\(..., persist=False\\) once"):
        seg.track(frames[2], persist=True, tracker=other)
    (r,) = seg.track(frames[2], tracker=other)  # persist=False: a fresh tracker from the new file
    assert sorted(r.boxes.id.tolist()) == list(range(1, len(r) + 1))
    with pytest.raises(ConfigError, match="tracker must be a tracker file"):
        seg.track(frames[0], tracker=30)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="persist must be True or False"):
        seg.track(frames[0], persist="yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- a .pt checkpoint as the model


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return Path(shutil.copy(SHAPES_PT, tmp_path / "shapes11n-seg.pt"))


def test_a_checkpoint_says_how_to_export_it(checkpoint, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ultralytics" else real(name, *a))
    with pytest.raises(ModelFormatError) as error:
        Segmenter(checkpoint)
    message = str(error.value)
    assert "shapes11n-seg.pt is a PyTorch checkpoint" in message and "\n" not in message
    assert f"edgeseg export {checkpoint}" in message and 'pip install "edgeseg[export]"' in message
    assert "shapes11n-seg.onnx beside it" in message
    assert not checkpoint.with_suffix(".onnx").exists()  # never exported behind the caller's back


def test_a_checkpoint_with_the_export_extra_installed(checkpoint, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    with pytest.raises(ModelFormatError, match="export it once with `edgeseg export .*shapes11n-seg.pt`, which writes "
                                               "shapes11n-seg.onnx beside it$"):
        Segmenter(checkpoint)


def test_a_checkpoint_beside_its_export_names_the_export(checkpoint, shapes_onnx):
    onnx = Path(shutil.copy(shapes_onnx, checkpoint.with_suffix(".onnx")))
    with pytest.raises(ModelFormatError, match=f"give {onnx}, its export beside it"):
        Segmenter(checkpoint)
    with pytest.raises(ModelFormatError, match="yolo11n-seg.pt is a PyTorch checkpoint"):
        Segmenter("yolo11n-seg.pt")  # missing too: still the advice, not only "not found"


def test_ultralytics_arguments_a_port_passes_along(caplog):
    import logging

    from edgeseg import ConfigError as Refused
    from edgeseg.app.synthetic import make_scene
    from edgeseg.assets import demo_model_path

    image = make_scene(320, 240, 4, seed=1).image
    with Segmenter(demo_model_path()) as seg:
        with caplog.at_level(logging.INFO, logger="edgeseg.segmenter"):
            (r,) = seg.predict(image, verbose=True, imgsz=320, retina_masks=True)
        assert any(m.startswith(f"{r.path}: 320x240 {r.verbose()}") for m in caplog.messages), caplog.messages
        (small,) = seg.predict(image, retina_masks=False)
        assert small.masks.shape[1:] == (320, 320) and small.masks.to_source().shape[1:] == (240, 320)
        with pytest.raises(Refused, match="retina_masks must be true or false"):
            seg.predict(image, retina_masks="no")
        with pytest.raises(Refused, match="imgsz 640: this Segmenter runs at 320x320"):
            seg(image, imgsz=640)
        with pytest.raises(Refused, match="verbose must be True or False"):
            seg.track(image, verbose="yes")

"""MaskTracker: one identity per object when the detector hesitates between classes. Identities against the known
truth of synthetic videos (hand-made hesitating detections, and the test model's own), against ByteTrack and
Ultralytics' trackers; merging, the class vote and mask IoU on their own; settings; the detector's output untouched."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeseg import ConfigError
from edgeseg.config import TRACK_CONF
from edgeseg.results import Boxes, Masks, Results
from edgeseg.tracking import Tracker
from edgeseg.tracking.masktrack import MaskTrackConfig, MaskTracker, load_masktrack_config
from edgeseg.tracking.overlap import crop_rects, duplicate_owners, mask_areas, mask_iou
from tests.helpers.track_scenes import (
    hesitant_detections,
    hesitation_rate,
    identity_metrics,
    make_track_video,
    switch_budget,
    tracked_of,
    ultralytics_tracked,
)

CONFIG = Path(__file__).resolve().parents[2] / "edgeseg" / "configs" / "masktrack.yaml"
SHAPE = (120, 160)  # (h, w) of the hand-made frames


def frame(crops, origins, conf, cls, shape=SHAPE) -> Results:
    """A hand-made Results: each object's mask given as a crop at its origin, its box the crop's rectangle."""
    origins = np.asarray(origins, np.int64).reshape(-1, 2)
    rects = crop_rects(crops, origins)
    boxes = Boxes(rects.astype(np.float32), np.asarray(conf, np.float32).reshape(-1),
                  np.asarray(cls, np.int64).reshape(-1), shape)
    return Results(np.zeros((*shape, 3), np.uint8), "video.mp4", {0: "circle", 3: "hexagon"}, boxes,
                   Masks(tuple(crops), origins, shape))


def follow(tracker, detections: list[Results]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, boxes) per frame of one tracker following a video's detections."""
    return [tracked_of(tracker.update(r)) for r in detections]


def disc(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


# ---------------------------------------------------------------- mask IoU on crops


def dense_mask_iou(crops_a, origins_a, crops_b, origins_b, shape) -> np.ndarray:
    """The plain reference: every mask drawn on a full frame, IoU of the dense masks."""
    def dense(crops, origins):
        out = np.zeros((len(crops), *shape), bool)
        for k, (c, (x, y)) in enumerate(zip(crops, origins, strict=True)):
            out[k, y : y + c.shape[0], x : x + c.shape[1]] = c.astype(bool)
        return out

    a, b = dense(crops_a, origins_a), dense(crops_b, origins_b)
    inter = (a[:, None] & b[None]).sum((2, 3))
    union = (a[:, None] | b[None]).sum((2, 3))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_mask_iou_on_crops_is_the_dense_iou(seed):
    rng = np.random.default_rng(seed)
    shape = (36, 48)  # small, so that many of the masks meet

    def masks(n):
        sizes = rng.integers(1, 25, (n, 2))
        crops = [(rng.random(s) < rng.uniform(0.2, 0.9)).astype(np.uint8) for s in sizes]
        crops[0][:] = 0  # an empty mask: IoU 0 with everything
        origins = np.stack([rng.integers(0, shape[1] - sizes[:, 1] + 1), rng.integers(0, shape[0] - sizes[:, 0] + 1)],
                           1)
        return crops, origins

    crops_a, origins_a = masks(9)
    crops_b, origins_b = masks(7)
    crops_b[1], origins_b[1] = crops_a[3].copy(), origins_a[3].copy()  # one pair alike: IoU 1
    got = mask_iou(crops_a, origins_a, crops_b, origins_b)
    want = dense_mask_iou(crops_a, origins_a, crops_b, origins_b, shape)
    assert got.dtype == np.float32 and got.shape == (9, 7)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got[3, 1] == 1 and (got[0] == 0).all() and (want > 0).sum() > 3
    np.testing.assert_array_equal(mask_areas(crops_a), [c.sum() for c in crops_a])


# ---------------------------------------------------------------- merging one object's class duplicates


def test_duplicates_of_different_classes_are_merged_under_the_best_score():
    d = disc(10)
    part = d.copy()
    part[:, 8:] = 0  # the left third or so: the same box, a third of the mask
    crops = [d, d, d, part, disc(10)]
    origins = [(10, 10), (11, 10), (10, 11), (60, 60), (60, 60)]
    conf = np.array([0.4, 0.6, 0.5, 0.9, 0.3], np.float32)
    cls = np.array([0, 3, 0, 0, 3], np.int64)
    rects = crop_rects(crops, origins)
    box_iou = dense_mask_iou([np.ones(c.shape, np.uint8) for c in crops], origins,
                             [np.ones(c.shape, np.uint8) for c in crops], origins, SHAPE)
    owners = duplicate_owners(box_iou, cls, conf, crops, rects, mask_areas(crops), 0.5, 0.5)
    # 0 (circle) and 2 (circle) both go under 1 (hexagon, the best score); 3 and 4 share a box, but two thirds of the
    # mask of 4 are not the object of 3 (mask IoU about 0.3): two objects
    assert owners.tolist() == [1, 1, 1, 3, 4]
    owners = duplicate_owners(box_iou, np.zeros(5, np.int64), conf, crops, rects, mask_areas(crops), 0.5, 0.5)
    assert owners.tolist() == [0, 1, 2, 3, 4]  # one class: class-aware NMS kept them apart on purpose


def test_a_hesitating_object_is_one_track_with_the_voted_class():
    d = disc(12)
    tracker = MaskTracker()
    scores = [(0.6, 0.5), (0.45, 0.55), (0.7, 0.4), (0.5, 0.52), (0.62, 0.3)]  # circle, hexagon
    for k, (circle, hexagon) in enumerate(scores):
        r = frame([d, d], [(20 + 2 * k, 30), (21 + 2 * k, 30)], [hexagon, circle], [3, 0])
        out = tracker.update(r)
        assert out.boxes.id.tolist() == [1]  # one object, one track, every frame
        best = int(np.argmax(r.boxes.conf))
        assert out.boxes.xyxy.tolist() == r.boxes.xyxy[[best]].tolist()  # the best-scoring detection stands for it
        assert out.boxes.cls.tolist() == [r.boxes.cls[best]]  # the detector's class of this frame ...
    assert out.boxes.track_cls.tolist() == [0]  # ... and the class the votes settled on: circle
    # ByteTrack on the same frames starts a second track for the duplicate
    byte = Tracker()
    ids = set()
    for k, (circle, hexagon) in enumerate(scores):
        ids |= set(byte.update(frame([d, d], [(20 + 2 * k, 30), (21 + 2 * k, 30)], [hexagon, circle], [3, 0]))
                   .boxes.id.tolist())
    assert len(ids) == 2


def test_the_class_vote_is_a_decayed_score_sum():
    d = disc(10)
    decay = 0.5
    tracker = MaskTracker(MaskTrackConfig(class_decay=decay))
    # (class, score) per frame, one detection each; the sums after each frame (circle 0, hexagon 3)
    seen = [(0, 0.9), (3, 0.5), (3, 0.5), (3, 0.3), (0, 0.4)]
    sums = {0: 0.0, 3: 0.0}
    for k, (c, s) in enumerate(seen):
        out = tracker.update(frame([d], [(30 + k, 30)], [s], [c]))
        sums = {key: v * decay for key, v in sums.items()}
        sums[c] += np.float32(s)
        assert out.boxes.cls.tolist() == [c]
        assert out.boxes.track_cls.tolist() == [max(sums, key=sums.get)], (k, sums)
    assert out.boxes.track_cls.tolist() == [0]  # 0.45625 against 0.3375: back to circle


def test_masks_keep_apart_two_objects_in_one_box():
    """Two triangles that fill one square between them, of two classes: the same box (box IoU 1) but masks that do not
    overlap. Neither merged nor swapped, whatever the scores do; with boxes alone the ids follow the scores."""
    upper = np.triu(np.ones((30, 30), np.uint8))
    lower = np.tril(np.ones((30, 30), np.uint8), -1)
    rng = np.random.default_rng(0)

    def video():
        for k in range(12):
            scores = rng.uniform(0.3, 0.9, 2)
            order = rng.permutation(2)
            crops, cls = [upper, lower], [0, 3]
            yield frame([crops[i] for i in order], [(40 + k, 40)] * 2, scores[order], [cls[i] for i in order]), order

    def ids_by_object(tracker):
        out = []
        for r, _ in video():
            tracked = tracker.update(r)
            assert len(tracked) == 2
            by_crop = {int(np.array_equal(c, lower)): int(i) for c, i in zip(tracked.masks.crops, tracked.boxes.id,
                                                                                strict=True)}
            out.append((by_crop[0], by_crop[1]))
        return out

    with_masks = ids_by_object(MaskTracker())
    assert len(set(with_masks)) == 1  # the upper triangle keeps its id, the lower one its own
    rng = np.random.default_rng(0)
    boxes_only = ids_by_object(MaskTracker(MaskTrackConfig(mask_weight=0.0)))
    assert len(set(boxes_only)) == 2  # boxes alone cannot tell them apart: the ids swap


# ---------------------------------------------------------------- hand-made hesitating detections on whole videos


@pytest.mark.parametrize("kind, seed", [("hesitation", 0), ("crossing", 1), ("enter_leave", 0), ("pan", 3),
                                        ("still", 2)])
def test_identities_under_hesitation_without_a_model(kind, seed):
    video = make_track_video(kind, seed, 480, 360, frames=60)
    detections = hesitant_detections(video, seed)
    ours = identity_metrics(video, follow(MaskTracker(), detections))
    byte = identity_metrics(video, follow(Tracker(), detections))
    assert ours["idf1"] >= 0.9 and ours["switches"] <= switch_budget(video), ours
    assert ours["track_ids"] <= video.objects + 1, ours
    # ByteTrack follows the duplicates too: more tracks than objects, identities that flip
    assert ours["idf1"] >= byte["idf1"] + 0.1 and byte["track_ids"] > video.objects, (ours, byte)


# ---------------------------------------------------------------- the test model's own detections


MODEL_VIDEOS = [("hesitation", 1, 960, 540), ("crossing", 2, 800, 800), ("pan", 0, 640, 480)]
FRAMES = 120


@pytest.fixture(scope="module")
def model_videos(shapes_onnx):
    from edgeseg import Segmenter

    seg = Segmenter(shapes_onnx)
    out = {}
    for kind, seed, width, height in MODEL_VIDEOS:
        video = make_track_video(kind, seed, width, height, frames=FRAMES)
        # the detector as track() runs it by default, and as Ultralytics' model.track does: conf 0.1
        out[video.name] = (video, [seg.predict(f, conf=TRACK_CONF)[0] for f in video.frames])
    return out


def test_the_model_hesitates_on_the_videos(model_videos):
    rates = {name: hesitation_rate(video, detections) for name, (video, detections) in model_videos.items()}
    assert min(rates.values()) >= 0.15, rates  # one object, two classes, in at least one frame in seven


def test_targets_against_bytetrack_on_the_models_detections(model_videos):
    for name, (video, detections) in model_videos.items():
        ours = identity_metrics(video, follow(MaskTracker(), detections))
        byte = identity_metrics(video, follow(Tracker(), detections))
        assert ours["idf1"] >= 0.85, (name, ours)
        assert ours["switches"] <= switch_budget(video), (name, ours)
        assert ours["idf1"] >= byte["idf1"], (name, ours, byte)


@pytest.mark.parametrize("name", [f"{kind}-{seed}" for kind, seed, _, _ in MODEL_VIDEOS])
def test_half_the_identity_errors_of_ultralytics(model_videos, shapes_onnx, name):
    """Against Ultralytics' model.track with its default settings (conf 0.1) and either of its trackers, on the
    first 60 frames of each video (the time Ultralytics takes)."""
    pytest.importorskip("ultralytics")
    video, detections = next(v for key, v in model_videos.items() if key.startswith(name))
    cut = {field: getattr(video, field)[:60] for field in ("frames", "ids", "boxes", "masks", "ignore")}
    video, detections = dataclasses.replace(video, **cut), detections[:60]
    ours = identity_metrics(video, follow(MaskTracker(), detections))
    theirs = {t: identity_metrics(video, ultralytics_tracked(shapes_onnx, video, f"{t}.yaml"))
              for t in ("bytetrack", "botsort")}
    best = max(m["idf1"] for m in theirs.values())
    assert 1 - ours["idf1"] <= (1 - best) / 2, (ours, theirs)


# ---------------------------------------------------------------- the detector's output, untouched


def test_output_is_the_detectors_and_the_input_is_not_changed():
    video = make_track_video("crossing", 5, 320, 240, frames=15)
    tracker = MaskTracker()
    for r in hesitant_detections(video, 5):
        before = copy.deepcopy(r)
        out = tracker.update(r)
        assert out is not r and r.boxes.id is None and r.boxes.track_cls is None and "track" not in r.speed
        for name in ("xyxy", "conf", "cls"):
            np.testing.assert_array_equal(getattr(r.boxes, name), getattr(before.boxes, name))
        np.testing.assert_array_equal(r.masks.origins, before.masks.origins)
        assert all(np.array_equal(a, b) for a, b in zip(r.masks.crops, before.masks.crops, strict=True))
        # each tracked object is one of the frame's detections, rows of the detector's arrays as they were
        rows = [int(np.flatnonzero((r.boxes.xyxy == b).all(1) & (r.boxes.conf == c))[0])
                for b, c in zip(out.boxes.xyxy, out.boxes.conf, strict=True)]
        assert rows == sorted(rows) and len(set(rows)) == len(rows)
        np.testing.assert_array_equal(out.boxes.cls, r.boxes.cls[rows])
        np.testing.assert_array_equal(out.masks.origins, r.masks.origins[rows])
        assert all(a is r.masks.crops[k] for a, k in zip(out.masks.crops, rows, strict=True))
        assert out.boxes.id.dtype == np.int64 and out.boxes.track_cls.dtype == np.int64
        assert out.orig_img is r.orig_img and out.speed["track"] > 0


def test_empty_frames_and_reset():
    tracker = MaskTracker()
    empty = tracker.update(frame([], np.zeros((0, 2)), [], []))
    assert len(empty) == 0 and empty.boxes.id.shape == (0,) and empty.boxes.track_cls.shape == (0,)
    d = disc(8)
    assert len(tracker.update(frame([d], [(5, 5)], [0.9], [0]))) == 0  # born after frame 1: shown when seen again
    assert tracker.update(frame([d], [(6, 5)], [0.9], [0])).boxes.id.tolist() == [1]
    tracker.reset()
    assert tracker.frame == 0 and tracker.update(frame([d], [(60, 50)], [0.9], [3])).boxes.id.tolist() == [1]


# ---------------------------------------------------------------- settings


def test_the_shipped_file_holds_the_defaults_and_documents_every_key():
    assert load_masktrack_config(CONFIG) == MaskTrackConfig() == load_masktrack_config("masktrack.yaml")
    text = CONFIG.read_text()
    keys = [line.split(":")[0] for line in text.splitlines() if re.match(r"^\w+:", line)]
    assert keys == ["tracker_type"] + [f.name for f in dataclasses.fields(MaskTrackConfig)]
    assert all("#" in line for line in text.splitlines() if re.match(r"^\w+:", line))
    assert yaml.safe_load(text)["tracker_type"] == "masktrack"


@pytest.mark.parametrize("settings, words", [
    ({"mask_weight": 1.5}, "mask_weight must be a number in [0, 1], got 1.5"),
    ({"merge_box_iou": "high"}, "merge_box_iou must be a number"),
    ({"class_decay": True}, "class_decay must be a number"),
    ({"partial_area": -0.1}, "partial_area must be a number in [0, 1]"),
    ({"track_low_thresh": 0.5, "track_high_thresh": 0.3}, "must not be above track_high_thresh"),
    ({"track_buffer": 2.5}, "track_buffer must be a non-negative"),
    ({"fuse_score": "yes"}, "fuse_score must be true or false"),
    ({"tracker_type": "bytetrack"}, "tracker_type must be masktrack"),
    ({"mask_wieght": 0.5}, "unknown setting(s) in tracker config: mask_wieght"),
])  # fmt: skip
def test_bad_settings_say_what_is_wrong(settings, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as error:
        MaskTrackConfig.from_mapping(settings)
    assert "\n" not in str(error.value)


def test_tracker_arguments(tmp_path):
    (tmp_path / "some.yaml").write_text("tracker_type: masktrack\nmask_weight: 0.25\ntrack_buffer: 60\n")
    assert load_masktrack_config(tmp_path / "some.yaml") == MaskTrackConfig(mask_weight=0.25, track_buffer=60)
    with pytest.raises(ConfigError, match="not found"):
        load_masktrack_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="MaskTrackConfig"):
        MaskTracker({"track_buffer": 30})
    with pytest.raises(ConfigError, match="frame_rate"):
        MaskTracker(frame_rate=0)
    with pytest.raises(TypeError, match="Results"):
        MaskTracker().update(np.zeros((0, 6)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        MaskTrackConfig().mask_weight = 0.3
    assert MaskTracker(frame_rate=60).max_frames_lost == 60

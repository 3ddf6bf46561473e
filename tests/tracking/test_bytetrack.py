"""The tracker: the same ids as Ultralytics' BYTETracker on the same detections, identities kept on a synthetic
video (IDF1 and ID switches against the known truth), the detector's output passed through untouched, settings."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from scipy.optimize import linear_sum_assignment

from edgeseg import ConfigError
from edgeseg.results import Boxes, Masks, Results
from edgeseg.tracking import Tracker, TrackerConfig, load_tracker_config, make_tracker
from edgeseg.tracking.bytetrack import _assign

CONFIG = Path(__file__).resolve().parents[2] / "edgeseg" / "configs" / "bytetrack.yaml"
SHAPE = (240, 320)  # (h, w) of every test frame


# ---------------------------------------------------------------- detections and Results made by hand


def frame_result(xyxy, conf, cls, shape=SHAPE, crops=None, origins=None, image=None) -> Results:
    """A hand-made Results; without crops, each mask is its integer box, filled."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(xyxy)
    if crops is None:
        h, w = shape
        lo = np.clip(np.floor(xyxy[:, :2]), 0, [w, h]).astype(np.int64)
        hi = np.clip(np.ceil(xyxy[:, 2:]), 0, [w, h]).astype(np.int64)
        crops = [np.ones(np.maximum(b - a, 0)[::-1], np.uint8) for a, b in zip(lo, hi, strict=True)]
        origins = lo
    boxes = Boxes(xyxy, np.asarray(conf, np.float32).reshape(n), np.asarray(cls, np.int64).reshape(n), shape)
    masks = Masks(tuple(crops), np.asarray(origins, np.int64).reshape(n, 2), shape)
    image = np.zeros((*shape, 3), np.uint8) if image is None else image
    return Results(image, "video.mp4", {0: "circle", 1: "rectangle", 2: "triangle", 3: "hexagon"}, boxes, masks)


def detection_indices(tracked: Results, frame: Results) -> np.ndarray:
    """Which of the frame's detections each tracked object is: its box and score, exactly (the test data has no two
    detections alike)."""
    same = ((tracked.boxes.xyxy[:, None] == frame.boxes.xyxy[None]).all(2)
            & (tracked.boxes.conf[:, None] == frame.boxes.conf))
    assert (same.sum(1) == 1).all(), "a tracked box is not exactly one of the detector's"
    return same.argmax(1) if same.size else np.zeros(len(tracked), np.int64)


def random_walk(seed: int, frames: int = 60, objects: int = 14) -> list[Results]:
    """Boxes that appear, wander, leave and come back, with scores across both thresholds, false positives and
    the odd empty box: the cases where ByteTrack's bookkeeping decides the ids."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    start = rng.integers(0, frames // 2, objects)
    stop = np.minimum(start + rng.integers(5, frames, objects), frames)
    centre = rng.uniform([30, 30], [w - 30, h - 30], (objects, 2))
    velocity = rng.normal(0, 2, (objects, 2))
    size = rng.uniform(12, 50, (objects, 2))
    out = []
    for f in range(frames):
        centre += velocity + rng.normal(0, 1.0, (objects, 2))
        size *= rng.uniform(0.97, 1.03, (objects, 2))
        shown = (start <= f) & (f < stop) & (rng.random(objects) > 0.12)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)[shown]
        conf = np.where(rng.random(len(boxes)) < 0.25, rng.uniform(0.05, 0.3, len(boxes)),
                        rng.uniform(0.3, 1, len(boxes)))
        if rng.random() < 0.3:  # a false positive somewhere
            xy = rng.uniform([0, 0], [w - 40, h - 40])
            boxes = np.vstack([boxes, [*xy, *(xy + rng.uniform(5, 40, 2))]])
            conf = np.append(conf, rng.uniform(0.1, 0.6))
        if rng.random() < 0.1 and len(boxes):  # an empty box: never tracked
            boxes[0, 2] = boxes[0, 0]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        order = rng.permutation(len(boxes))
        out.append(frame_result(boxes[order], conf[order], rng.integers(0, 4, len(boxes))))
    return out


# ---------------------------------------------------------------- a synthetic video with known identities


def polygon(sides: int, cx: float, cy: float, r: float, theta: float) -> np.ndarray:
    a = theta + np.arange(sides) * 2 * np.pi / sides
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def moving_shapes(seed: int, frames: int = 40):
    """Six filled shapes moving at constant velocity over a noisy background: objects 0 and 1 cross in the middle
    (1 in front), object 2 is hidden in frames 15-18. Returns per frame (image, detections Results, the object id
    of each detection, the ids of the objects in sight). Detections come from the visible part of each object's
    mask, its box jittered, one in twenty dropped, one in ten with a low score, in shuffled order."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    sides = [32, 4, 6, 3, 32, 4]  # circle, square, hexagon, triangle
    radius = np.array([16, 14, 15, 13, 12, 17], float)
    # 0 and 1 in the middle of the frame; 2-5 each in a lane of their own, above and below
    lanes = np.array([35, 75, 165, 205], float)[rng.permutation(4)]
    first = np.array([[40, 110], [280, 124]] + [[rng.uniform(40, w - 40), y + rng.uniform(-4, 4)] for y in lanes])
    last = np.array([[280, 126], [40, 112]] + [[rng.uniform(40, w - 40), y + rng.uniform(-4, 4)] for y in lanes])
    velocity = (last - first) / (frames - 1)
    colours = rng.integers(60, 255, (6, 3))
    hidden = {2: range(15, 19)}
    video = []
    for f in range(frames):
        image = np.clip(rng.normal(90, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        owner = np.zeros((h, w), np.int32)
        for k in range(6):
            if f in hidden.get(k, ()):
                continue
            cx, cy = first[k] + f * velocity[k]
            pts = np.round(polygon(sides[k], cx, cy, radius[k], 0.05 * f * (k + 1))).astype(np.int32)
            cv2.fillPoly(image, [pts], colours[k].tolist())
            cv2.fillPoly(owner, [pts], k + 1)
        xyxy, conf, cls, crops, origins, truth = [], [], [], [], [], []
        in_sight = []
        for k in range(6):
            ys, xs = np.nonzero(owner == k + 1)
            if len(xs) < 30:
                continue
            in_sight.append(k)
            if rng.random() < 0.05:
                continue  # the detector missed it
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            crops.append((owner[y0:y1, x0:x1] == k + 1).astype(np.uint8))
            origins.append((x0, y0))
            xyxy.append(np.clip(np.array([x0, y0, x1, y1]) + rng.normal(0, 0.6, 4), 0, [w, h, w, h]))
            conf.append(rng.uniform(0.12, 0.24) if rng.random() < 0.1 else rng.uniform(0.5, 0.95))
            cls.append(k % 4)
            truth.append(k)
        order = rng.permutation(len(xyxy))
        pick = lambda values, order=order: [values[i] for i in order]  # noqa: E731
        result = frame_result(np.array(pick(xyxy)).reshape(-1, 4), pick(conf), pick(cls), crops=pick(crops),
                              origins=pick(origins), image=image)
        video.append((result, np.array(pick(truth), np.int64), in_sight))
    return video


def identity_scores(truth_in_sight: list, assigned: list[dict[int, int]]) -> tuple[float, int]:
    """IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) with the one-to-one truth-to-track mapping that maximises IDTP, and ID
    switches (an object's track id differs from the one it had when last tracked). `assigned[f]` maps the object
    ids tracked in frame f to their track ids; an object in sight but not tracked is a miss (IDFN)."""
    truths = sorted({g for frame in truth_in_sight for g in frame})
    tracks = sorted({t for frame in assigned for t in frame.values()})
    together = np.zeros((len(truths), len(tracks)))
    for frame in assigned:
        for g, t in frame.items():
            together[truths.index(g), tracks.index(t)] += 1
    rows, cols = linear_sum_assignment(-together)
    idtp = together[rows, cols].sum()
    n_truth = sum(len(frame) for frame in truth_in_sight)
    n_tracked = sum(len(frame) for frame in assigned)
    switches, last = 0, {}
    for frame in assigned:
        for g, t in frame.items():
            switches += g in last and last[g] != t
            last[g] = t
    return 2 * idtp / (n_truth + n_tracked), switches


def test_identity_scores_on_known_cases():
    assert identity_scores([[0, 1]] * 4, [{0: 5, 1: 6}] * 4) == (1.0, 0)
    # object 0 swaps to a new track half way: half its frames are IDTP; one switch
    idf1, switches = identity_scores([[0]] * 4, [{0: 1}, {0: 1}, {0: 2}, {0: 2}])
    assert idf1 == pytest.approx(0.5) and switches == 1
    idf1, switches = identity_scores([[0]] * 4, [{0: 1}, {}, {0: 1}, {}])  # two misses
    assert idf1 == pytest.approx(2 * 2 / (4 + 2)) and switches == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_video_keeps_identities(seed):
    video = moving_shapes(seed)
    tracker = Tracker(load_tracker_config(CONFIG))
    assigned, in_sight = [], []
    for result, truth, sight in video:
        out = tracker.update(result)
        assigned.append(dict(zip(truth[detection_indices(out, result)].tolist(), out.boxes.id.tolist(), strict=True)))
        in_sight.append(sight)
    idf1, switches = identity_scores(in_sight, assigned)
    # the crossing pair and the hidden object come back with their ids
    for k in (0, 1, 2):
        ids = {frame[k] for frame in assigned if k in frame}
        assert len(ids) == 1, f"object {k} had track ids {ids}"
    assert idf1 >= 0.9 and switches == 0, (idf1, switches)


# ---------------------------------------------------------------- the same ids as Ultralytics


def _lapjv(cost, extend_cost=False, cost_limit=np.inf, return_cost=True):
    """lap.lapjv's extend_cost / cost_limit semantics, built as lap builds them (rows and columns padded with
    cost_limit / 2 to a square), solved by SciPy. Only for machines without the `lap` package."""
    cost = np.asarray(cost, np.float64)
    n, m = cost.shape
    square = np.full((n + m, n + m), cost_limit / 2)
    square[n:, m:] = 0
    square[:n, :m] = cost
    rows, cols = linear_sum_assignment(square)
    x = np.where(cols[:n] < m, cols[:n], -1)
    y = np.full(m, -1)
    for r, c in zip(rows[:n], cols[:n], strict=True):
        if c < m:
            y[c] = r
    return (square[rows, cols].sum(), x, y) if return_cost else (x, y)


@pytest.fixture(scope="module")
def byte_tracker():
    """Ultralytics' BYTETracker class. Ultralytics imports `lap` for its assignments; where lap is not installed,
    a stand-in with lap.lapjv's semantics is put in its place for this import."""
    pytest.importorskip("ultralytics")
    try:
        import lap  # noqa: F401

        stand_in = False
    except ImportError:
        sys.modules["lap"] = types.SimpleNamespace(__version__="stand-in", lapjv=_lapjv)
        stand_in = True
    try:
        from ultralytics.trackers.byte_tracker import BYTETracker
    finally:
        if stand_in:
            del sys.modules["lap"]
    return BYTETracker


def ultralytics_ids(byte_tracker, frames: list[Results], settings: dict) -> list[dict[int, int]]:
    """Detection index -> track id per frame from Ultralytics' BYTETracker, fed as its track callback feeds it."""
    from ultralytics.engine.results import Boxes as UltralyticsBoxes
    from ultralytics.utils import IterableSimpleNamespace

    tracker = byte_tracker(IterableSimpleNamespace(**settings))
    out = []
    for r in frames:
        data = np.concatenate([r.boxes.xyxy, r.boxes.conf[:, None], r.boxes.cls[:, None]], 1).astype(np.float32)
        rows = tracker.update(UltralyticsBoxes(data, r.orig_shape), r.orig_img)
        out.append({int(row[7]): int(row[4]) for row in rows})
    return out


def edgeseg_ids(frames: list[Results], config: TrackerConfig) -> list[dict[int, int]]:
    """Detection index -> track id per frame from the edgeseg tracker that `config` is the settings of."""
    tracker = make_tracker(config)
    out = []
    for r in frames:
        tracked = tracker.update(r)
        out.append(dict(zip(detection_indices(tracked, r).tolist(), tracked.boxes.id.tolist(), strict=True)))
    return out


CHANGED_SETTINGS = [
    {},
    {"fuse_score": False, "match_thresh": 0.9},
    {"track_buffer": 3},  # lost tracks removed, and found again in the frame after their removal
    {"track_high_thresh": 0.5, "track_low_thresh": 0.2, "new_track_thresh": 0.6, "match_thresh": 0.7},
]


@pytest.mark.parametrize("changes", CHANGED_SETTINGS, ids=["default", "no-fuse", "short-buffer", "strict"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_ids_as_ultralytics_on_random_walks(byte_tracker, seed, changes):
    settings = {**yaml.safe_load(CONFIG.read_text()), **changes}
    config = TrackerConfig.from_mapping(settings)
    frames = random_walk(seed)
    expected = ultralytics_ids(byte_tracker, frames, settings)
    got = edgeseg_ids(frames, config)
    for f, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"frame {f + 1}: Ultralytics {want}, edgeseg {have}"
    assert sum(map(len, got)) > 120 and len({i for frame in got for i in frame.values()}) > 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_ids_as_ultralytics_on_the_synthetic_video(byte_tracker, seed):
    frames = [result for result, _, _ in moving_shapes(seed)]
    settings = yaml.safe_load(CONFIG.read_text())
    assert edgeseg_ids(frames, load_tracker_config(CONFIG)) == ultralytics_ids(byte_tracker, frames, settings)


def test_assignment_has_the_optimum_of_lap_with_a_cost_limit():
    rng = np.random.default_rng(0)
    for n, m in [(0, 3), (3, 0), (1, 1), (4, 7), (7, 4), (9, 9)]:
        cost = rng.random((n, m)).astype(np.float32)
        for limit in (0.3, 0.8, 1.5):
            matches, rows, cols = _assign(cost, limit)
            _, x, y = _lapjv(cost, extend_cost=True, cost_limit=limit) if n and m else (0, -np.ones(n), -np.ones(m))
            assert matches.tolist() == [[i, j] for i, j in enumerate(x) if j >= 0]  # random costs: no ties
            assert rows.tolist() == np.flatnonzero(x < 0).tolist() and cols.tolist() == np.flatnonzero(y < 0).tolist()
            assert (cost[matches[:, 0], matches[:, 1]] < limit).all()


# ---------------------------------------------------------------- the detector's output, untouched


def test_output_is_the_detectors_and_the_input_is_not_changed():
    video = moving_shapes(3, frames=12)
    tracker = Tracker()
    for result, _, _ in video:
        before = copy.deepcopy(result)
        out = tracker.update(result)
        assert out is not result and result.boxes.id is None and "track" not in result.speed
        for name in ("xyxy", "conf", "cls"):
            np.testing.assert_array_equal(getattr(result.boxes, name), getattr(before.boxes, name))
        np.testing.assert_array_equal(result.masks.origins, before.masks.origins)
        assert all(np.array_equal(a, b) for a, b in zip(result.masks.crops, before.masks.crops, strict=True))
        np.testing.assert_array_equal(result.orig_img, before.orig_img)

        keep = detection_indices(out, result)
        assert (np.diff(keep) > 0).all()  # in detection order
        expected = result[keep]
        for name in ("xyxy", "conf", "cls"):
            np.testing.assert_array_equal(getattr(out.boxes, name), getattr(expected.boxes, name))
        assert all(a is b for a, b in zip(out.masks.crops, expected.masks.crops, strict=True))
        np.testing.assert_array_equal(out.masks.origins, expected.masks.origins)
        assert out.boxes.id.dtype == np.int64 and len(out.boxes.id) == len(out) == len(set(out.boxes.id.tolist()))
        assert out.orig_img is result.orig_img and out.names == result.names and out.speed["track"] >= 0


def test_ids_start_at_one_new_tracks_wait_a_frame_and_reset_forgets():
    a, b = [10, 10, 50, 50], [100, 100, 140, 150]
    tracker = Tracker()
    assert tracker.update(frame_result([a], [0.9], [0])).boxes.id.tolist() == [1]
    step = lambda box, d: [v + d for v in box]  # noqa: E731
    # b is born in frame 2: tracked (and shown) from frame 3 on
    assert tracker.update(frame_result([step(a, 2), b], [0.9, 0.8], [0, 1])).boxes.id.tolist() == [1]
    assert tracker.update(frame_result([step(a, 4), step(b, 1)], [0.9, 0.8], [0, 1])).boxes.id.tolist() == [1, 2]
    # a low-score detection keeps a track alive; a box of zero width is never tracked
    out = tracker.update(frame_result([step(a, 6), [5, 5, 5, 20]], [0.15, 0.9], [0, 0]))
    assert out.boxes.id.tolist() == [1] and out.boxes.conf.tolist() == [np.float32(0.15)]
    empty = tracker.update(frame_result(np.zeros((0, 4)), [], []))
    assert len(empty) == 0 and empty.boxes.id.shape == (0,) and empty.boxes.id.dtype == np.int64
    tracker.reset()
    assert tracker.frame == 0 and tracker.update(frame_result([b], [0.9], [1])).boxes.id.tolist() == [1]


def test_a_lost_track_is_removed_after_the_buffer():
    box = [50, 50, 90, 90]
    # track_buffer 2: found after 2 frames away; not after 5 (+1, as Ultralytics)
    for gap, same in [(3, True), (6, False)]:
        tracker = Tracker(TrackerConfig(track_buffer=2))
        tracker.update(frame_result([box], [0.9], [0]))
        for _ in range(gap - 1):
            tracker.update(frame_result(np.zeros((0, 4)), [], []))
        out = tracker.update(frame_result([box], [0.9], [0]))
        assert (out.boxes.id.tolist() == [1]) is same
    assert Tracker(TrackerConfig(track_buffer=30), frame_rate=60).max_frames_lost == 60


# ---------------------------------------------------------------- settings


def test_yaml_holds_ultralytics_defaults():
    assert load_tracker_config(CONFIG) == TrackerConfig()


@pytest.mark.parametrize("settings, words", [
    ({"track_high_thresh": 1.5}, "track_high_thresh must be a number in [0, 1]"),
    ({"match_thresh": "high"}, "match_thresh must be a number"),
    ({"new_track_thresh": True}, "new_track_thresh must be a number"),
    ({"track_low_thresh": 0.5, "track_high_thresh": 0.3}, "must not be above track_high_thresh"),
    ({"track_buffer": -1}, "track_buffer must be a non-negative"),
    ({"track_buffer": 2.5}, "track_buffer must be a non-negative"),
    ({"fuse_score": "yes"}, "fuse_score must be true or false"),
    ({"tracker_type": "botsort"}, "tracker_type must be bytetrack"),
    ({"buffer": 30}, "unknown setting(s) in tracker config: buffer"),
])  # fmt: skip
def test_bad_settings_say_what_is_wrong(settings, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrackerConfig.from_mapping(settings)


def test_tracker_files_and_arguments(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_tracker_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("track_buffer: [1\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_tracker_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_tracker_config(tmp_path / "list.yaml")
    (tmp_path / "some.yaml").write_text("track_buffer: 60\nfuse_score: false\n")
    assert load_tracker_config(tmp_path / "some.yaml") == TrackerConfig(track_buffer=60, fuse_score=False)
    with pytest.raises(ConfigError, match="frame_rate"):
        Tracker(frame_rate=0)
    with pytest.raises(ConfigError, match="TrackerConfig"):
        Tracker({"track_buffer": 30})
    with pytest.raises(TypeError, match="Results"):
        Tracker().update(np.zeros((0, 6)))
    with pytest.raises(AttributeError):
        TrackerConfig().track_buffer = 3  # frozen

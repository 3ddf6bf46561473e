"""BoT-SORT: the same ids as Ultralytics' BOTSORT on the same detections and frames (random walks, and a camera that
pans or shakes, where the camera-motion compensation decides the ids); the camera's motion as Ultralytics' GMC
estimates it, and as the camera really moved; identities kept under a shaky camera only with the compensation; the
(x, y, w, h) Kalman filter against Ultralytics'; settings and their errors."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeseg import ConfigError
from edgeseg.app.synthetic import make_scene, panning_frames
from edgeseg.tracking import Tracker, TrackerConfig, kalman, load_tracker_config
from edgeseg.tracking.botsort import BotSort, BotSortConfig, load_botsort_config
from edgeseg.tracking.gmc import CameraMotion
from tests.tracking import test_bytetrack
from tests.tracking.test_bytetrack import (
    SHAPE,
    detection_indices,
    edgeseg_ids,
    frame_result,
    identity_scores,
    random_walk,
)

ultralytics_ids = test_bytetrack.ultralytics_ids  # fed the BOTSORT class, it feeds it as it feeds BYTETracker
byte_tracker = test_bytetrack.byte_tracker  # the fixture that imports Ultralytics' trackers, lap or not

CONFIG = Path(__file__).resolve().parents[2] / "edgeseg" / "configs" / "botsort.yaml"
H, W = SHAPE


# ---------------------------------------------------------------- a camera moving over a still scene


def camera_video(seed: int, frames: int = 40, camera: str = "shaky"):
    """A still scene of 30 shapes filmed by a moving camera: "pan" moves 6 px right and 3 down a frame
    (synthetic.panning_frames), "shaky" jumps up to 14 px either way each frame. Detections are the shapes' known
    boxes seen from the camera, kept when more than half in the frame, jittered, one in twelve missed, about one in
    seven with a low score, shuffled. Returns per frame (Results, the shape of each detection, the shapes in sight)."""
    rng = np.random.default_rng(seed)
    if camera == "pan":
        step = np.array([6, 3])
        offsets = np.arange(frames)[:, None] * step
        images = list(panning_frames(W, H, 30, frames, seed, step=tuple(step)))
        scene = make_scene(W + 6 * frames, H + 3 * frames, 30, seed)  # the scene panning_frames films
    else:
        offsets = np.cumsum(rng.integers(-14, 15, (frames, 2)), 0)
        offsets -= offsets.min(0)
        span = offsets.max(0)
        scene = make_scene(W + int(span[0]), H + int(span[1]), 30, seed)
        images = [np.ascontiguousarray(scene.image[y:y + H, x:x + W]) for x, y in offsets]
    video = []
    for (x, y), image in zip(offsets, images, strict=True):
        boxes = scene.boxes - np.array([x, y, x, y], np.float32)
        inside = np.clip(boxes, 0, [W, H, W, H])
        area = lambda b: (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # noqa: E731
        in_sight = np.flatnonzero(area(inside) > 0.5 * area(boxes))
        shown = in_sight[rng.random(len(in_sight)) > 1 / 12]
        xyxy = np.clip(inside[shown] + rng.normal(0, 0.8, (len(shown), 4)), 0, [W, H, W, H])
        conf = np.where(rng.random(len(shown)) < 0.15, rng.uniform(0.12, 0.24, len(shown)),
                        rng.uniform(0.4, 0.95, len(shown)))
        order = rng.permutation(len(shown))
        result = frame_result(xyxy[order], conf[order], rng.integers(0, 4, len(shown)), image=image)
        video.append((result, shown[order], in_sight.tolist()))
    return video


# ---------------------------------------------------------------- Ultralytics' BoT-SORT as the reference


@pytest.fixture(scope="module")
def ultralytics_trackers(byte_tracker):
    """Ultralytics' BOTSORT, GMC, KalmanFilterXYWH and multi_gmc, imported once byte_tracker has imported Ultralytics'
    trackers (with a stand-in for `lap` where it is not installed)."""
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.utils.gmc import GMC
    from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYWH
    from ultralytics.trackers.utils.stracks import multi_gmc

    return types.SimpleNamespace(BOTSORT=BOTSORT, GMC=GMC, KalmanFilterXYWH=KalmanFilterXYWH, multi_gmc=multi_gmc)


def assert_same_ids(expected: list[dict[int, int]], got: list[dict[int, int]]) -> None:
    for f, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"frame {f + 1}: Ultralytics {want}, edgeseg {have}"


def settings_with(**changes) -> dict:
    return {**yaml.safe_load(CONFIG.read_text()), **changes}


@pytest.mark.parametrize("changes", test_bytetrack.CHANGED_SETTINGS, ids=["default", "no-fuse", "short-buffer",
                                                                           "strict"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_ids_as_ultralytics_on_random_walks(ultralytics_trackers, seed, changes):
    settings = settings_with(**changes)
    frames = random_walk(seed)
    got = edgeseg_ids(frames, BotSortConfig.from_mapping(settings))
    assert_same_ids(ultralytics_ids(ultralytics_trackers.BOTSORT, frames, settings), got)
    assert sum(map(len, got)) > 120 and len({i for frame in got for i in frame.values()}) > 10


@pytest.mark.parametrize("camera", ["pan", "shaky"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_ids_as_ultralytics_under_a_moving_camera(ultralytics_trackers, seed, camera):
    frames = [r for r, _, _ in camera_video(seed, camera=camera)]
    got = edgeseg_ids(frames, load_botsort_config(CONFIG))
    assert_same_ids(ultralytics_ids(ultralytics_trackers.BOTSORT, frames, settings_with()), got)
    assert sum(map(len, got)) > 250


def test_same_ids_as_ultralytics_with_ecc_and_without_compensation(ultralytics_trackers):
    frames = [r for r, _, _ in camera_video(3, frames=6)]
    for method in ("ecc", "none"):
        settings = settings_with(gmc_method=method)
        got = edgeseg_ids(frames, BotSortConfig.from_mapping(settings))
        assert_same_ids(ultralytics_ids(ultralytics_trackers.BOTSORT, frames, settings), got)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_motion_compensation_keeps_identities_under_a_shaky_camera(seed):
    video = camera_video(seed)
    scores = {}
    for method in ("sparseOptFlow", "none"):
        tracker = BotSort(BotSortConfig(gmc_method=method))
        assigned = []
        for result, truth, _ in video:
            out = tracker.update(result)
            assigned.append(dict(zip(truth[detection_indices(out, result)].tolist(), out.boxes.id.tolist(),
                                     strict=True)))
        scores[method] = identity_scores([sight for _, _, sight in video], assigned)
    (idf1, switches), (idf1_still, switches_still) = scores["sparseOptFlow"], scores["none"]
    assert idf1 > 0.88 and switches <= 2, scores
    assert idf1_still < 0.75 and switches_still > 30, scores  # the same tracker that assumes a still camera


# ---------------------------------------------------------------- the camera's motion


@pytest.mark.parametrize("method, frames", [("sparseOptFlow", 20), ("ecc", 4)])
def test_affine_is_ultralytics_gmc(ultralytics_trackers, method, frames):
    ours, theirs = CameraMotion(method), ultralytics_trackers.GMC(method)
    for r, _, _ in camera_video(4, frames=frames):
        affine = ours.apply(r.orig_img)
        assert affine.shape == (2, 3) and affine.dtype == np.float64
        np.testing.assert_allclose(affine, theirs.apply(r.orig_img), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("method", ["sparseOptFlow", "ecc"])
def test_affine_is_the_camera_pan(method):
    # the camera moves 6 px right and 3 down: the scene, 6 left and 3 up
    motion = CameraMotion(method)
    affines = [motion.apply(image) for image in panning_frames(W, H, 30, 5, seed=5, step=(6, 3))]
    np.testing.assert_array_equal(affines[0], np.eye(2, 3))
    for affine in affines[1:]:
        np.testing.assert_allclose(affine[:, :2], np.eye(2), atol=0.01)
        np.testing.assert_allclose(affine[:, 2], [-6, -3], atol=0.3)


def test_a_still_scene_gives_the_identity():
    image = make_scene(W, H, 12, seed=6).image
    motion = CameraMotion()
    affines = [motion.apply(image.copy()) for _ in range(4)]
    for affine in affines:
        np.testing.assert_allclose(affine, np.eye(2, 3), atol=1e-9)
    plain, motion = np.full((H, W, 3), 90, np.uint8), CameraMotion()  # no corners to follow
    assert all(np.array_equal(motion.apply(plain), np.eye(2, 3)) for _ in range(3))
    none = CameraMotion(None)
    assert none.method is None and np.array_equal(none.apply(image), np.eye(2, 3))


def test_a_change_of_frame_size_starts_again_with_a_warning(caplog):
    frames = list(panning_frames(W, H, 30, 6, seed=7, step=(4, 2)))
    small = [f[: H // 2, : W // 2].copy() for f in frames[3:]]
    motion = CameraMotion()
    with caplog.at_level(logging.WARNING, logger="edgeseg.tracking.gmc"):
        before = [motion.apply(f) for f in frames[:3]]
        assert not caplog.records
        after = [motion.apply(f) for f in small]
    assert [r.getMessage() for r in caplog.records] == [
        f"camera motion compensation: the frame size changed from {W}x{H} to {W // 2}x{H // 2}; starting again from "
        "this frame"]
    np.testing.assert_allclose(before[1][:, 2], [-4, -2], atol=0.3)
    np.testing.assert_array_equal(after[0], np.eye(2, 3))  # nothing to compare the first smaller frame with
    np.testing.assert_allclose(after[1][:, 2], [-4, -2], atol=0.3)



def test_the_tracker_goes_on_through_a_change_of_frame_size(caplog):
    # the camera keeps panning; from frame 4 on, only the top-left quarter of its frames comes, with the detections
    # inside it: the objects there were in sight before, and keep their ids
    video = camera_video(8, frames=7, camera="pan")
    tracker = BotSort()
    before = {i for r, _, _ in video[:3] for i in tracker.update(r).boxes.id.tolist()}
    after = []
    with caplog.at_level(logging.WARNING, logger="edgeseg.tracking.gmc"):
        for r, _, _ in video[3:]:
            quarter = r[(r.boxes.xyxy[:, 2] < W // 2) & (r.boxes.xyxy[:, 3] < H // 2)].boxes
            image = np.ascontiguousarray(r.orig_img[: H // 2, : W // 2])
            out = tracker.update(frame_result(quarter.xyxy, quarter.conf, quarter.cls, (H // 2, W // 2), image=image))
            assert len(out) >= len(quarter) - 1
            after += out.boxes.id.tolist()
    assert len(caplog.records) == 1 and "frame size changed from 320x240 to 160x120" in caplog.records[0].getMessage()
    assert len(after) > 12 and np.isin(after, list(before)).mean() > 0.8, (after, before)

def test_a_bad_frame_is_refused():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) BGR or \(H, W\) gray uint8 frame, got \(8, 8, 3\) float32"):
        CameraMotion().apply(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="got \\(8, 8, 4\\) uint8"):
        CameraMotion().apply(np.zeros((8, 8, 4), np.uint8))


# ---------------------------------------------------------------- the (x, y, w, h) Kalman filter


def test_xywh_filter_is_ultralytics(ultralytics_trackers):
    rng = np.random.default_rng(9)
    n = 7
    xywh = np.concatenate([rng.uniform(20, 300, (n, 2)), rng.uniform(5, 80, (n, 2))], 1).astype(np.float32)
    reference = ultralytics_trackers.KalmanFilterXYWH()
    mean, cov = kalman.initiate_xywh(xywh)
    for i in range(n):
        want_mean, want_cov = reference.initiate(xywh[i])
        np.testing.assert_array_equal(mean[i], want_mean)
        np.testing.assert_array_equal(cov[i], want_cov)
    mean[:, 4:] = rng.normal(0, 2, (n, 4))  # moving tracks
    want_mean, want_cov = reference.multi_predict(mean, cov)
    mean, cov = kalman.predict_xywh(mean, cov)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-12)
    measured = (xywh + rng.normal(0, 2, (n, 4))).astype(np.float32)
    new_mean, new_cov = kalman.update_xywh(mean, cov, measured)
    for i in range(n):
        want_mean, want_cov = reference.update(mean[i], cov[i], measured[i])
        np.testing.assert_allclose(new_mean[i], want_mean, rtol=1e-12)
        np.testing.assert_allclose(new_cov[i], want_cov, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kalman.xywh_to_xyxy(new_mean), np.concatenate(
        [new_mean[:, :2] - new_mean[:, 2:4] / 2, new_mean[:, :2] + new_mean[:, 2:4] / 2], 1), rtol=1e-6)


def test_warp_is_ultralytics_multi_gmc(ultralytics_trackers):
    rng = np.random.default_rng(10)
    mean, cov = kalman.predict_xywh(*kalman.initiate_xywh(rng.uniform(10, 90, (5, 4))))
    mean[:, 4:] = rng.normal(0, 2, (5, 4))
    angle, scale = 0.3, 1.1  # a turn, so that the sizes follow the absolute values
    affine = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 7.5],
                       [scale * np.sin(angle), scale * np.cos(angle), -3.25]])
    tracks = [types.SimpleNamespace(mean=m.copy(), covariance=c.copy(), angle=None) for m, c in
              zip(mean, cov, strict=True)]
    ultralytics_trackers.multi_gmc(tracks, affine)
    new_mean, new_cov = kalman.warp_xywh(mean, cov, affine)
    np.testing.assert_array_equal(new_mean, np.stack([t.mean for t in tracks]))
    np.testing.assert_array_equal(new_cov, np.stack([t.covariance for t in tracks]))
    assert (new_mean[:, 2:4] > 0).all()
    np.testing.assert_allclose(new_mean[:, :2], mean[:, :2] @ affine[:, :2].T + affine[:, 2])


# ---------------------------------------------------------------- the tracker's API


def test_output_ids_and_reset():
    a, b = [10, 10, 50, 50], [100, 100, 140, 150]
    step = lambda box, d: [v + d for v in box]  # noqa: E731
    tracker = BotSort()
    assert tracker.config == BotSortConfig() and tracker.frame == 0
    assert tracker.update(frame_result([a], [0.9], [0])).boxes.id.tolist() == [1]
    assert tracker.update(frame_result([step(a, 2), b], [0.9, 0.8], [0, 1])).boxes.id.tolist() == [1]
    out = tracker.update(frame_result([step(b, 1), step(a, 4)], [0.8, 0.9], [1, 0]))
    assert out.boxes.id.tolist() == [2, 1] and out.boxes.conf.tolist() == [np.float32(0.8), np.float32(0.9)]
    assert out.boxes.id.dtype == np.int64 and out.speed["track"] >= 0 and tracker.frame == 3
    np.testing.assert_array_equal(out.boxes.xyxy, np.array([step(b, 1), step(a, 4)], np.float32))
    empty = tracker.update(frame_result(np.zeros((0, 4)), [], []))
    assert len(empty) == 0 and empty.boxes.id.shape == (0,)
    tracker.reset()
    assert tracker.frame == 0 and tracker.update(frame_result([b], [0.9], [1])).boxes.id.tolist() == [1]


def test_trackers_take_only_their_own_settings():
    with pytest.raises(ConfigError, match="config must be a BotSortConfig \\(load_botsort_config reads"):
        BotSort(TrackerConfig())
    with pytest.raises(ConfigError, match="config must be a TrackerConfig \\(load_tracker_config reads"):
        Tracker(BotSortConfig())
    with pytest.raises(ConfigError, match="frame_rate"):
        BotSort(frame_rate=-1)
    with pytest.raises(TypeError, match="Results"):
        BotSort().update(np.zeros((0, 6)))


# ---------------------------------------------------------------- settings


def test_yaml_holds_ultralytics_defaults():
    assert load_botsort_config(CONFIG) == BotSortConfig()
    ultralytics = pytest.importorskip("ultralytics")
    theirs = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "botsort.yaml"
    assert yaml.safe_load(CONFIG.read_text()) == yaml.safe_load(theirs.read_text())


def test_the_shipped_file_by_bare_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_botsort_config("botsort.yaml") == BotSortConfig()
    with pytest.raises(ConfigError, match="tracker_type must be bytetrack for a TrackerConfig, got 'botsort'"):
        load_tracker_config("botsort.yaml")
    with pytest.raises(ConfigError, match="tracker_type must be botsort for a BotSortConfig, got 'bytetrack'"):
        load_botsort_config("bytetrack.yaml")
    Path("mine.yaml").write_text("gmc_method: none\ntrack_buffer: 60\n")
    assert load_botsort_config("mine.yaml") == BotSortConfig(gmc_method=None, track_buffer=60)


@pytest.mark.parametrize("value", [None, "none", "None"])
def test_no_compensation_is_spelled_three_ways(value):
    assert BotSortConfig(gmc_method=value).gmc_method is None


@pytest.mark.parametrize("settings, words", [
    ({"with_reid": True}, "with_reid: true is not supported: edgeseg's BoT-SORT has no ReID"),
    ({"with_reid": "no"}, "with_reid must be true or false"),
    ({"gmc_method": "orb"}, "gmc_method 'orb' is not supported (Ultralytics has it; edgeseg does not): use one of "
                            "sparseOptFlow, ecc, none, or null"),
    ({"gmc_method": "sift"}, "gmc_method 'sift' is not supported"),
    ({"gmc_method": "sparseoptflow"}, "gmc_method 'sparseoptflow' is not supported: use one of sparseOptFlow"),
    ({"gmc_method": 1}, "gmc_method 1 is not supported"),
    ({"proximity_thresh": 1.5}, "proximity_thresh must be a number in [0, 1], got 1.5"),
    ({"appearance_thresh": "high"}, "appearance_thresh must be a number in [0, 1]"),
    ({"model": ""}, "model must be the name or path of a ReID model"),
    ({"track_high_thresh": -0.1}, "track_high_thresh must be a number in [0, 1]"),
    ({"track_buffer": 2.5}, "track_buffer must be a non-negative"),
    ({"fuse_score": 1}, "fuse_score must be true or false"),
    ({"tracker_type": "bytetrack"}, "tracker_type must be botsort for a BotSortConfig"),
    ({"gmc": "none"}, "unknown setting(s) in tracker config: gmc"),
])  # fmt: skip
def test_bad_settings_say_what_is_wrong(settings, words):
    with pytest.raises(ConfigError) as error:
        BotSortConfig.from_mapping(settings)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        BotSortConfig().gmc_method = None
    with pytest.raises(ConfigError, match="must be a mapping"):
        BotSortConfig.from_mapping([1])
    assert BotSortConfig.from_mapping(None) == BotSortConfig()

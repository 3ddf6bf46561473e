"""ByteTrack: track ids for the objects of a video's Results, frame after frame.

    tracker = Tracker(load_tracker_config("bytetrack.yaml"))   # shipped in edgeseg/configs; or a path
    for r in seg(frames):
        r = tracker.update(r)      # the detections that belong to a track, with r.boxes.id
        r.boxes.id                 # (N,) int64, the same object keeps its id from frame to frame

The algorithm and its bookkeeping are those of Ultralytics' BYTETracker, so that both give the same
ids on the same detections: a Kalman filter predicts each track's box; tracked and lost tracks are
matched to the high-score detections by IoU (fused with the score), the tracks left over to the
low-score detections by IoU alone, tracks born in the last frame to the high-score detections left
over; a track is born from a high-score detection nobody took and confirmed when matched again
(at once on the first frame); a lost track is removed after `track_buffer` frames (at 30 fps).

Each track remembers which detection of the frame it took, so the output is the input indexed by
those detections: the detector's boxes, scores, classes and masks, never the filter's boxes.

BoT-SORT (botsort.py) is this Tracker with another Kalman state (its `_model`) and tracks moved with the
camera (its `_compensate`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..config import find_settings_file, read_yaml, settings_from_mapping
from ..errors import ConfigError
from ..results import Results
from . import kalman

# Ultralytics' fixed thresholds: the second (low-score) association, the association of tracks born in
# the last frame, the IoU distance below which a tracked and a lost track are one object, and how
# many removed tracks are remembered.
LOW_SCORE_MATCH_THRESH = 0.5
UNCONFIRMED_MATCH_THRESH = 0.7
DUPLICATE_THRESH = 0.15
REMOVED_MEMORY = 1000

TRACKED, LOST, REMOVED = 1, 2, 3

_Config = TypeVar("_Config", bound="_AssociationConfig")


@dataclass(frozen=True)
class _AssociationConfig:
    """The settings ByteTrack, BoT-SORT and MaskTracker share, checked alike. `TRACKER_TYPE` is the tracker_type their
    files name."""

    TRACKER_TYPE: ClassVar[str]

    track_high_thresh: float = 0.25  # detections at or above this take part in the first association
    track_low_thresh: float = 0.1  # detections above this (and below the high one) in the second
    new_track_thresh: float = 0.25  # an unmatched high-score detection at or above this starts a track
    track_buffer: int = 30  # frames (at 30 fps) a lost track waits to be found again
    match_thresh: float = 0.8  # the largest (fused) IoU distance of a first-association match
    fuse_score: bool = True  # first association: distance 1 - IoU * score instead of 1 - IoU

    def __post_init__(self) -> None:
        for name in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.track_low_thresh > self.track_high_thresh:
            raise ConfigError(f"track_low_thresh ({self.track_low_thresh}) must not be above track_high_thresh "
                              f"({self.track_high_thresh})")
        buffer = self.track_buffer
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
            raise ConfigError(f"track_buffer must be a non-negative number of frames, got {buffer!r}")
        if not isinstance(self.fuse_score, bool):
            raise ConfigError(f"fuse_score must be true or false, got {self.fuse_score!r}")

    @classmethod
    def from_mapping(cls: type[_Config], data: Mapping[str, Any] | None, where: str = "tracker config") -> _Config:
        """From a YAML mapping; unknown keys are an error. `tracker_type`, as in Ultralytics' files, must be the
        class's own (bytetrack for a TrackerConfig)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of settings, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("tracker_type", cls.TRACKER_TYPE)
        if kind != cls.TRACKER_TYPE:
            raise ConfigError(f"{where}: tracker_type must be {cls.TRACKER_TYPE} for a {cls.__name__}, got {kind!r} "
                              "(tracking.load_config reads a tracker file of any type)")
        return settings_from_mapping(cls, data, where)


@dataclass(frozen=True)
class TrackerConfig(_AssociationConfig):
    """ByteTrack settings; the defaults are Ultralytics' (edgeseg/configs/bytetrack.yaml)."""

    TRACKER_TYPE: ClassVar[str] = "bytetrack"


def load_tracker_config(path: str | Path) -> TrackerConfig:
    """Reads a YAML tracker file: a path, or the bare name of a file shipped in edgeseg/configs ("bytetrack.yaml",
    as Ultralytics' tracker="bytetrack.yaml"). Unknown keys are an error."""
    path = find_settings_file(path, "tracker config")
    return TrackerConfig.from_mapping(read_yaml(path, "tracker config"), where=str(path))


class _Track:
    """One track's state. `det` is the index of the detection it took in its last frame."""

    __slots__ = ("id", "state", "confirmed", "mean", "cov", "det", "frame", "start")

    def __init__(self, track_id: int, mean: np.ndarray, cov: np.ndarray, det: int, frame: int, confirmed: bool):
        self.id, self.mean, self.cov, self.det = track_id, mean, cov, det
        self.state, self.confirmed, self.frame, self.start = TRACKED, confirmed, frame, frame


@dataclass(frozen=True)
class _StateModel:
    """How a tracker's Kalman filter sees boxes: the measurements it takes and its filter functions, over tracks."""

    measure: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # detector xyxy -> (boxes compared, measurements)
    initiate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    update: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    to_xyxy: Callable[[np.ndarray], np.ndarray]  # states (N, 8) -> boxes (N, 4) float32
    still_when_lost: tuple[int, ...]  # the velocities set to 0 while a track is out of sight


def _assign(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching of rows to columns where only pairs cheaper than `limit` may match.

    The same optimum as lap.lapjv(cost, extend_cost=True, cost_limit=limit), which ByteTrack uses: leaving
    a row and a column unmatched costs `limit`, so a pair is worth matching by its cost minus the limit.
    Returns matches (K, 2) int64 in row order, unmatched rows and unmatched columns (ascending int64).
    """
    from scipy.optimize import linear_sum_assignment

    n, m = cost.shape
    if n == 0 or m == 0:
        return np.empty((0, 2), np.int64), np.arange(n), np.arange(m)
    cost = cost.astype(np.float64)
    rows, cols = linear_sum_assignment(np.minimum(cost - limit, 0.0))
    keep = cost[rows, cols] < limit
    rows, cols = rows[keep], cols[keep]
    return (np.stack([rows, cols], 1).astype(np.int64), np.setdiff1d(np.arange(n), rows),
            np.setdiff1d(np.arange(m), cols))


def _iou_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - IoU of boxes a (N, 4) and b (M, 4) float32 -> (N, M) float32, computed in float32 as Ultralytics does."""
    if len(a) == 0 or len(b) == 0:
        return np.ones((len(a), len(b)), np.float32)
    wh = (np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return 1 - inter / (area_b[None, :] + area_a[:, None] - inter + np.float32(1e-7))


def _measurements(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes (N, 4) float32 -> the boxes the tracker compares (N, 4) float32 and measurements (cx, cy, a, h)
    (N, 4) float32. Both pass through top-left/size form in float32, as in Ultralytics, so the ids agree with its."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    top_left = (xyxy[:, :2] + xyxy[:, 2:]) / 2 - wh / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = wh[:, :1] / wh[:, 1:]
    xyah = np.concatenate([top_left + wh / 2, aspect, wh[:, 1:]], 1)
    return np.concatenate([top_left, top_left + wh], 1), xyah


class _Moves:
    """What one frame does to the tracks: the (track, detection) pairs taken, whose filters are corrected once at
    the end; the tracks that took one while tracked (or were born) and those found again; those lost and removed."""

    def __init__(self, frame: int):
        self.frame = frame
        self.taken: list[tuple[Any, int]] = []
        self.activated: list[Any] = []
        self.refound: list[Any] = []
        self.lost: list[Any] = []
        self.removed: list[Any] = []

    def take(self, tracks: list[Any], dets: np.ndarray, matches: np.ndarray) -> None:
        """Each matched (i, j): tracks[i] takes detection dets[j] and is tracked (and confirmed) from this frame."""
        for i, j in matches:
            track, det = tracks[i], int(dets[j])
            (self.activated if track.state == TRACKED else self.refound).append(track)
            track.state, track.confirmed, track.frame, track.det = TRACKED, True, self.frame, det
            self.taken.append((track, det))

    def lose(self, tracks: Iterable[Any]) -> None:
        for track in tracks:
            track.state = LOST
            self.lost.append(track)

    def remove(self, tracks: Iterable[Any]) -> None:
        for track in tracks:
            track.state = REMOVED
            self.removed.append(track)


def _joint(a: list[_Track], b: list[_Track]) -> list[_Track]:
    ids = {t.id for t in a}
    return a + [t for t in b if t.id not in ids]


def _without(a: list[_Track], ids: Any) -> list[_Track]:
    ids = set(ids)
    return [t for t in a if t.id not in ids]


class Tracker:
    """ByteTrack over a video's Results; one Tracker per video (or call reset() between videos).

    `frame_rate` scales the buffer: a lost track is removed after track_buffer * frame_rate / 30 frames.
    """

    # what a subclass (BoT-SORT) changes: its settings, its loader's name for messages, its Kalman state
    _config_type: ClassVar[type] = TrackerConfig
    _config_loader: ClassVar[str] = "load_tracker_config"
    _model: ClassVar[_StateModel] = _StateModel(_measurements, kalman.initiate, kalman.predict, kalman.update,
                                                kalman.xyah_to_xyxy, still_when_lost=(7,))  # (cx, cy, a, h) states

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30):
        if config is None:
            config = self._config_type()
        if not isinstance(config, self._config_type):
            raise ConfigError(f"config must be a {self._config_type.__name__} ({self._config_loader} reads a YAML "
                              f"file), got {type(config).__name__}")
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not frame_rate > 0:
            raise ConfigError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}")
        self.config = config
        self.frame_rate = frame_rate
        self.max_frames_lost = int(frame_rate / 30.0 * config.track_buffer)
        self.reset()

    def reset(self) -> None:
        """Forgets every track; ids start at 1 again."""
        self.frame = 0
        self._next_id = 1
        self._tracked: list[_Track] = []  # state TRACKED, confirmed or born in the last frame
        self._lost: list[_Track] = []
        self._removed_ids: deque[int] = deque(maxlen=REMOVED_MEMORY)

    def update(self, results: Results) -> Results:
        """The next frame's detections -> a new Results of those that belong to a track, in detection order,
        with boxes.id (N,) int64. Boxes, scores, classes and masks are the input's; the input is not changed."""
        if not isinstance(results, Results):
            raise TypeError(f"Tracker.update takes one frame's Results, got {type(results).__name__}")
        start = time.perf_counter()
        self.frame += 1
        det_xyxy, measured = self._model.measure(results.boxes.xyxy)
        conf = results.boxes.conf
        size = results.boxes.xyxy[:, 2:] - results.boxes.xyxy[:, :2]
        valid = (size[:, 0] > 0) & (size[:, 1] > 0)  # an empty box has no aspect: never tracked
        cfg = self.config
        high = np.flatnonzero(valid & (conf >= cfg.track_high_thresh))
        low = np.flatnonzero(valid & (conf > cfg.track_low_thresh) & (conf < cfg.track_high_thresh))

        unconfirmed = [t for t in self._tracked if not t.confirmed]
        pool = _joint([t for t in self._tracked if t.confirmed], self._lost)
        self._predict(pool)
        self._compensate(pool + unconfirmed, results)
        moves = _Moves(self.frame)

        # 1. tracked and lost tracks with the high-score detections
        cost = self._distance(pool, det_xyxy[high], conf[high] if cfg.fuse_score else None)
        matches, left_tracks, left_high = _assign(cost, cfg.match_thresh)
        moves.take(pool, high, matches)
        # 2. tracked tracks left over with the low-score detections, by IoU alone
        remaining = [pool[i] for i in left_tracks if pool[i].state == TRACKED]
        matches, left_tracks, _ = _assign(self._distance(remaining, det_xyxy[low]), LOW_SCORE_MATCH_THRESH)
        moves.take(remaining, low, matches)
        moves.lose(remaining[i] for i in left_tracks)
        # 3. tracks born in the last frame with the high-score detections left over; unmatched, they go
        high = high[left_high]
        cost = self._distance(unconfirmed, det_xyxy[high], conf[high] if cfg.fuse_score else None)
        matches, left_unconfirmed, left_high = _assign(cost, UNCONFIRMED_MATCH_THRESH)
        moves.take(unconfirmed, high, matches)
        moves.remove(unconfirmed[i] for i in left_unconfirmed)
        self._correct(moves.taken, measured)
        # 4. new tracks from the high-score detections nobody took
        born = high[left_high][conf[high[left_high]] >= cfg.new_track_thresh]
        means, covs = self._model.initiate(measured[born])
        for det, mean, cov in zip(born, means, covs, strict=True):
            moves.activated.append(_Track(self._next_id, mean, cov, int(det), self.frame, confirmed=self.frame == 1))
            self._next_id += 1
        # 5. lost tracks not seen for too long
        self._end_frame(moves)
        return self._output(results, start)

    def _end_frame(self, moves: _Moves) -> None:
        """The end of a frame: lost tracks not seen for too long are removed, then the lists brought up to date as
        ByteTrack keeps them. Tracks removed in this frame leave the lost list only in the next frame (until then
        they can still be found), and a track once removed cannot be lost again."""
        moves.remove(t for t in self._lost if self.frame - t.frame > self.max_frames_lost)
        tracked = _joint(_joint([t for t in self._tracked if t.state == TRACKED], moves.activated), moves.refound)
        lost_now = _without(self._lost, (t.id for t in tracked)) + moves.lost
        lost_now = _without(lost_now, self._removed_ids)
        self._tracked, self._lost = self._drop_duplicates(tracked, lost_now)
        self._removed_ids.extend(t.id for t in moves.removed)

    def _output(self, results: Results, start: float) -> Results:
        """The detections the confirmed tracks took, in detection order, with their ids (and what _labels adds),
        and the time since `start` as speed["track"]."""
        shown = [t for t in self._tracked if t.confirmed]
        dets = np.array([t.det for t in shown], np.int64)
        order = np.argsort(dets, kind="stable")
        shown = [shown[k] for k in order]
        out = results[dets[order]]
        boxes = dataclasses.replace(out.boxes, id=np.array([t.id for t in shown], np.int64), **self._labels(shown))
        speed = {**results.speed, "track": (time.perf_counter() - start) * 1e3}
        return Results(out.orig_img, out.path, out.names, boxes, out.masks, speed)

    def _labels(self, shown: list[_Track]) -> dict[str, np.ndarray]:
        """Box fields beside the ids, one value per shown track: none for ByteTrack."""
        return {}

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        mean = np.stack([t.mean for t in tracks])
        cov = np.stack([t.cov for t in tracks])
        # a track out of sight stops growing or shrinking
        mean[np.ix_([t.state != TRACKED for t in tracks], self._model.still_when_lost)] = 0
        mean, cov = self._model.predict(mean, cov)
        for t, m, c in zip(tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _compensate(self, tracks: list[_Track], results: Results) -> None:
        """Moves the tracks with the camera between the last frame and this one; ByteTrack assumes a still camera."""

    def _correct(self, taken: list[tuple[_Track, int]], measured: np.ndarray) -> None:
        if not taken:
            return
        mean, cov = self._model.update(np.stack([t.mean for t, _ in taken]), np.stack([t.cov for t, _ in taken]),
                                       measured[[d for _, d in taken]])
        for (t, _), m, c in zip(taken, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _boxes(self, tracks: list[_Track]) -> np.ndarray:
        """The tracks' filtered boxes (N, 4) float32 xyxy."""
        return self._model.to_xyxy(np.stack([t.mean for t in tracks])) if tracks else np.empty((0, 4), np.float32)

    def _distance(self, tracks: list[_Track], det_xyxy: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """(tracks, detections) float32: 1 - IoU, or 1 - IoU * score when scores are given."""
        cost = _iou_distance(self._boxes(tracks), det_xyxy)
        if scores is not None and cost.size:
            cost = 1 - (1 - cost) * scores[None, :]
        return cost

    def _drop_duplicates(self, tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        """A tracked and a lost track whose boxes overlap almost entirely are one object: the younger one goes."""
        if not tracked or not lost:
            return tracked, lost
        drop_tracked, drop_lost = set(), set()
        close = _iou_distance(self._boxes(tracked), self._boxes(lost)) < DUPLICATE_THRESH
        for p, q in zip(*np.nonzero(close), strict=True):
            if tracked[p].frame - tracked[p].start > lost[q].frame - lost[q].start:
                drop_lost.add(q)
            else:
                drop_tracked.add(p)
        return ([t for i, t in enumerate(tracked) if i not in drop_tracked],
                [t for i, t in enumerate(lost) if i not in drop_lost])


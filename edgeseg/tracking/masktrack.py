"""MaskTracker: ByteTrack that keeps one identity per object when the detector hesitates between classes.

    tracker = MaskTracker(load_masktrack_config("masktrack.yaml"))   # shipped in edgeseg/configs; or a path
    for r in seg(frames):
        r = tracker.update(r)      # the detections that belong to a track, with r.boxes.id and r.boxes.track_cls
        r.boxes.track_cls          # (N,) int64, the class each track settled on; r.boxes.cls stays the detector's

A detector that cannot decide between two classes (a circle or a hexagon) keeps two boxes for one object after
class-aware NMS, one per class, with scores that swap from frame to frame; ByteTrack then follows two tracks and the
object's identity flips between them. MaskTracker keeps ByteTrack's association (Kalman prediction; tracked and lost
tracks matched to the high-score detections, the tracks left over to the low-score ones, tracks born in the last
frame confirmed by a second match, a lost-track buffer) and changes this:
  - detections of different classes that cover the same object (box IoU >= merge_box_iou and mask IoU >=
    merge_mask_iou) are one candidate, represented by the best-scoring of them; the others are not output;
  - tracks and detections are compared by (1 - mask_weight) * box IoU + mask_weight * mask IoU, the mask being the
    track's last full view moved by the motion the filter predicts: masks tell apart two crossing objects whose boxes
    overlap. Mask IoU is computed only where the boxes overlap, on the crops (see overlap.py);
  - each track votes on its class: per class, a sum of the scores of the detections it took (every class of a merged
    group), multiplied by class_decay at each detection; the class with the largest sum is boxes.track_cls;
  - a detection whose mask is far smaller (or larger) than its track's usual one is a partial view, an object going
    behind another or out of the frame: it is output with its track but moves neither the filter nor the kept mask,
    so that the track's velocity and size survive the occlusion;
  - lost tracks get a second chance before new tracks are born: matched to the high-score candidates left over by
    the IoU of boxes grown by recover_expand (an object coming out from behind another is seen in part at first,
    often with a low score, and its prediction has drifted);
  - a tracked and a lost track whose boxes coincide are one object only if they were never seen in the same frame
    (ByteTrack drops one of them: the object hidden behind another when two cross).
The output is the input indexed by the detections tracks took: the detector's boxes, scores, classes and masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import find_settings_file, read_yaml
from ..errors import ConfigError
from ..results import Results
from . import kalman
from .bytetrack import (  # ByteTrack's fixed thresholds and track states are MaskTracker's too
    DUPLICATE_THRESH,
    LOST,
    LOW_SCORE_MATCH_THRESH,
    TRACKED,
    UNCONFIRMED_MATCH_THRESH,
    Tracker,
    _assign,
    _AssociationConfig,
    _iou_distance,
    _joint,
    _measurements,
    _Moves,
)
from .overlap import crop_rects, duplicate_owners, mask_areas, pair_mask_iou


@dataclass(frozen=True)
class MaskTrackConfig(_AssociationConfig):
    """MaskTracker settings (edgeseg/configs/masktrack.yaml): ByteTrack's, with Ultralytics' defaults and checks (a
    similarity of box and mask IoU where ByteTrack has the box IoU alone), and the merge, mask and class-vote
    settings."""

    TRACKER_TYPE: ClassVar[str] = "masktrack"

    mask_weight: float = 0.5  # similarity = (1 - mask_weight) * box IoU + mask_weight * mask IoU
    merge_box_iou: float = 0.5  # detections of different classes overlapping this much (box IoU) ...
    merge_mask_iou: float = 0.5  # ... and this much (mask IoU) are one object
    class_decay: float = 0.9  # a track's class votes are multiplied by this at each detection it takes
    # a detection whose mask area is below this fraction of its track's usual area (or above its inverse) is a partial
    # view (the object half hidden or half out of the frame, or two objects seen as one): output with its track, it
    # moves neither the filter nor the track's mask
    partial_area: float = 0.6
    recover_expand: float = 0.5  # lost tracks found again: boxes grown by this fraction of their size on each side
    recover_thresh: float = 0.7  # ... and matched at a distance 1 - similarity below this

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("mask_weight", "merge_box_iou", "merge_mask_iou", "class_decay", "partial_area",
                     "recover_expand", "recover_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))


def load_masktrack_config(path: str | Path) -> MaskTrackConfig:
    """Reads a YAML MaskTracker file: a path, or the bare name of a file shipped in edgeseg/configs
    ("masktrack.yaml"). Unknown keys are an error."""
    path = find_settings_file(path, "tracker config")
    return MaskTrackConfig.from_mapping(read_yaml(path, "tracker config"), where=str(path))


class _Track:
    """One track's state. `det` is the detection it took in its last frame; crop/origin/area the mask of its last
    full view, `anchor` the centre (x, y) of that detection's box (the mask moves with the filter's centre from
    there); `usual_area` a running mean of the mask areas of its full views; `votes` class -> decayed score sum."""

    __slots__ = ("id", "state", "confirmed", "mean", "cov", "det", "frame", "start", "crop", "origin", "area",
                 "anchor", "usual_area", "votes")

    def __init__(self, track_id: int, mean: np.ndarray, cov: np.ndarray, frame: int, confirmed: bool):
        self.id, self.mean, self.cov = track_id, mean, cov
        self.state, self.confirmed, self.frame, self.start = TRACKED, confirmed, frame, frame
        self.usual_area = 0.0  # none yet
        self.votes: dict[int, float] = {}

    @property
    def cls(self) -> int:
        """The class with the most votes (the smallest such class on a tie)."""
        return max(sorted(self.votes), key=self.votes.__getitem__)


class _Frame:
    """One frame's detections as the tracker compares them: boxes, masks and, per candidate, the classes and scores
    of the detections it stands for."""

    def __init__(self, results: Results, cfg: MaskTrackConfig):
        boxes = results.boxes
        self.xyxy, self.xyah = _measurements(boxes.xyxy)
        self.conf, self.cls = boxes.conf, boxes.cls
        self.crops = results.masks.crops
        self.rects = crop_rects(self.crops, results.masks.origins)
        self.areas = mask_areas(self.crops)
        self.centres = (self.xyxy[:, :2].astype(np.float64) + self.xyxy[:, 2:]) / 2  # of the boxes, (x, y)
        self.cls_list, self.conf_list = self.cls.tolist(), self.conf.tolist()
        size = boxes.xyxy[:, 2:] - boxes.xyxy[:, :2]
        valid = (size[:, 0] > 0) & (size[:, 1] > 0) & (self.conf > cfg.track_low_thresh)  # an empty box: never tracked
        pool = np.flatnonzero(valid)
        owner = pool.copy()
        if len(pool) > 1:
            box_iou = 1 - _iou_distance(self.xyxy[pool], self.xyxy[pool])
            local = duplicate_owners(box_iou, self.cls[pool], self.conf[pool], [self.crops[i] for i in pool],
                                     self.rects[pool], self.areas[pool], cfg.merge_box_iou, cfg.merge_mask_iou)
            owner = pool[local]
        self.candidates = pool[owner == pool]  # ascending detection indices
        self.members: dict[int, list[int]] = {}  # a candidate that stands for others -> all of its group
        for k in np.flatnonzero(owner != pool).tolist():
            self.members.setdefault(int(owner[k]), [int(owner[k])]).append(int(pool[k]))


class MaskTracker(Tracker):
    """ByteTrack with merged class duplicates, mask IoU and a class vote over a video's Results; one MaskTracker per
    video (or call reset() between videos). The public API, the settings checks and the track lists are Tracker's;
    the frame's work is its own.

    `frame_rate` scales the buffer: a lost track is removed after track_buffer * frame_rate / 30 frames.
    """

    _config_type: ClassVar[type] = MaskTrackConfig
    _config_loader: ClassVar[str] = "load_masktrack_config"

    def update(self, results: Results) -> Results:
        """The next frame's detections -> a new Results of those that stand for a track, in detection order, with
        boxes.id and boxes.track_cls (N,) int64. Boxes, scores, classes and masks are the input's; the input is not
        changed. ConfigError for masks left on the GPU: call results.to_host() first."""
        if not isinstance(results, Results):
            raise TypeError(f"MaskTracker.update takes one frame's Results, got {type(results).__name__}")
        results.require_host_masks("MaskTracker")
        start = time.perf_counter()
        self.frame += 1
        cfg = self.config
        frame = _Frame(results, cfg)
        conf = frame.conf
        high = frame.candidates[conf[frame.candidates] >= cfg.track_high_thresh]
        low = frame.candidates[conf[frame.candidates] < cfg.track_high_thresh]

        unconfirmed = [t for t in self._tracked if not t.confirmed]
        pool = _joint([t for t in self._tracked if t.confirmed], self._lost)
        self._predict(pool)
        moves = _Moves(self.frame)  # the filters and the masks are updated from moves.taken at the end

        # 1. tracked and lost tracks with the high-score candidates
        cost = self._distance(pool, frame, high, cfg.fuse_score)
        matches, left_tracks, left_high = _assign(cost, cfg.match_thresh)
        moves.take(pool, high, matches)
        # 2. tracked tracks left over with the low-score candidates, without the score
        remaining = [pool[i] for i in left_tracks if pool[i].state == TRACKED]
        matches, left_tracks, _ = _assign(self._distance(remaining, frame, low), LOW_SCORE_MATCH_THRESH)
        moves.take(remaining, low, matches)
        moves.lose(remaining[i] for i in left_tracks)
        high = high[left_high]
        # 3. lost tracks with the high-score candidates left over, by grown boxes: an object coming out from behind
        # another is seen first in part, often with a low score, and its track's prediction has drifted
        waiting = [t for t in pool if t.state == LOST]
        cost = self._distance(waiting, frame, high, expand=cfg.recover_expand, masks=False)
        matches, _, left_high = _assign(cost, cfg.recover_thresh)
        moves.take(waiting, high, matches)
        high = high[left_high]
        # 4. tracks born in the last frame with the high-score candidates left over; unmatched, they go
        cost = self._distance(unconfirmed, frame, high, cfg.fuse_score)
        matches, left_unconfirmed, left_high = _assign(cost, UNCONFIRMED_MATCH_THRESH)
        moves.take(unconfirmed, high, matches)
        moves.remove(unconfirmed[i] for i in left_unconfirmed)
        # 5. new tracks from the high-score candidates nobody took
        born = high[left_high][conf[high[left_high]] >= cfg.new_track_thresh]
        means, covs = kalman.initiate(frame.xyah[born])
        for det, mean, cov in zip(born, means, covs, strict=True):
            track = _Track(self._next_id, mean, cov, self.frame, confirmed=self.frame == 1)
            self._next_id += 1
            track.det = int(det)
            moves.activated.append(track)
            self._observe(track, frame, int(det))
        self._correct(moves.taken, frame)
        # 6. lost tracks not seen for too long
        self._end_frame(moves)
        return self._output(results, start)

    def _labels(self, shown: list[_Track]) -> dict[str, np.ndarray]:  # type: ignore[override]
        """Each shown track's voted class, as boxes.track_cls."""
        return {"track_cls": np.array([t.cls for t in shown], np.int64)}

    def _observe(self, track: _Track, frame: _Frame, det: int, full: bool = True) -> None:
        """The track took candidate `det`: it votes for the classes of the detections it stands for, each with its
        score, and keeps the mask of a full view."""
        if full:
            track.crop, track.origin, track.area = frame.crops[det], frame.rects[det, :2], frame.areas[det]
            track.anchor = frame.centres[det]
            track.usual_area = 0.7 * track.usual_area + 0.3 * track.area if track.usual_area else float(track.area)
        decay = self.config.class_decay
        votes = {c: v * decay for c, v in track.votes.items()}
        for k in frame.members.get(det, (det,)):
            c = frame.cls_list[k]
            votes[c] = votes.get(c, 0.0) + frame.conf_list[k]
        track.votes = votes

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        mean = np.stack([t.mean for t in tracks])
        cov = np.stack([t.cov for t in tracks])
        mean[[t.state != TRACKED for t in tracks], 7] = 0  # a track out of sight stops growing or shrinking
        mean, cov = kalman.predict(mean, cov)
        for t, m, c in zip(tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _correct(self, taken: list[tuple[_Track, int]], frame: _Frame) -> None:
        """Corrects the filter of each track with the detection it took, unless that is a partial view."""
        ratio = self.config.partial_area
        full = []
        for t, d in taken:
            area = frame.areas[d]
            is_full = ratio * t.usual_area <= area and ratio * area <= t.usual_area
            self._observe(t, frame, d, is_full)
            if is_full:
                full.append((t, d))
        if not full:
            return
        mean, cov = kalman.update(np.stack([t.mean for t, _ in full]), np.stack([t.cov for t, _ in full]),
                                  frame.xyah[[d for _, d in full]])
        for (t, _), m, c in zip(full, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _distance(self, tracks: list[_Track], frame: _Frame, dets: np.ndarray, fuse: bool = False,
                  expand: float = 0.0, masks: bool = True) -> np.ndarray:
        """(tracks, dets) float32 distance 1 - similarity (* the detection's score when fused), similarity the
        weighted box and mask IoU of the track's predicted box and moved mask with each detection's (the box IoU
        alone without `masks`); the boxes grown by `expand` times their width and height on each side first."""
        if not tracks or not len(dets):
            return np.ones((len(tracks), len(dets)), np.float32)
        mean = np.stack([t.mean for t in tracks])
        similarity = 1 - _iou_distance(_grown(kalman.xyah_to_xyxy(mean), expand), _grown(frame.xyxy[dets], expand))
        weight = self.config.mask_weight
        if weight > 0 and masks:
            rows, cols = np.nonzero(similarity > 0)  # only where the boxes overlap
            shift = np.round(mean[:, :2] - np.stack([t.anchor for t in tracks])).astype(np.int64)
            rects = np.stack([t.origin for t in tracks]) + shift
            rects = np.concatenate([rects, rects + np.array([t.crop.shape[::-1] for t in tracks], np.int64)], 1)
            masks = np.zeros_like(similarity)
            masks[rows, cols] = pair_mask_iou([t.crop for t in tracks], rects, np.array([t.area for t in tracks]),
                                              frame.crops, frame.rects, frame.areas, rows, dets[cols])
            similarity = (1 - weight) * similarity + weight * masks
        if fuse:
            similarity = similarity * frame.conf[dets][None, :]
        return (1 - similarity).astype(np.float32)

    @staticmethod
    def _drop_duplicates(tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        """A tracked track born after a lost one was last seen, whose box overlaps the lost one's almost entirely, is
        the same object: the younger one goes. Unlike ByteTrack, two tracks seen in one frame are never one object:
        the one hidden behind the other when they cross stays."""
        if not tracked or not lost:
            return tracked, lost
        box = lambda ts: kalman.xyah_to_xyxy(np.stack([t.mean for t in ts]))  # noqa: E731
        drop_tracked, drop_lost = set(), set()
        for p, q in zip(*np.nonzero(_iou_distance(box(tracked), box(lost)) < DUPLICATE_THRESH), strict=True):
            if tracked[p].start <= lost[q].frame:
                continue
            if tracked[p].frame - tracked[p].start > lost[q].frame - lost[q].start:
                drop_lost.add(q)
            else:
                drop_tracked.add(p)
        return ([t for i, t in enumerate(tracked) if i not in drop_tracked],
                [t for i, t in enumerate(lost) if i not in drop_lost])


def _grown(xyxy: np.ndarray, expand: float) -> np.ndarray:
    """Boxes (N, 4) float32 grown by `expand` times their width and height on each side."""
    if expand == 0:
        return xyxy
    margin = (xyxy[:, 2:] - xyxy[:, :2]) * np.float32(expand)
    return np.concatenate([xyxy[:, :2] - margin, xyxy[:, 2:] + margin], 1)


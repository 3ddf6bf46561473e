"""Synthetic videos with known identities, for tracker tests and benchmarks: moving shapes drawn as
edgeseg.app.synthetic draws them (the scenes the test model shapes11n-seg was trained on), with each object's id,
visible box and visible mask in every frame, and identity metrics against that truth (py-motmetrics).

    video = make_track_video("crossing", seed=0, width=640, height=480, frames=120)
    tracked = [tracker.update(r) for r in detections]              # one Results per frame
    identity_metrics(video, tracked)      # {"idf1": ..., "mota": ..., "switches": ..., "fragmentations": ...}

The kinds of video (KINDS); most objects are circles and hexagons, the pair of classes the test model hesitates
between:
  hesitation   8-10 objects drifting slowly apart from each other, spinning
  crossing     three pairs of objects that cross, one passing in front of the other, and two more
  enter_leave  objects that come in at one side of the frame and leave at the other, at staggered times
  pan          still objects seen by a camera that pans: everything moves, objects leave and come in at the edges
  still        nothing moves; only the sensor noise changes
An object that shows less than MIN_VISIBILITY of its area (hidden behind another, or out of the frame) is not in
the truth but an area to ignore: a track on it is neither right nor wrong (MOTChallenge's distractors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeseg.app import synthetic
from edgeseg.results import Boxes, Masks, Results

KINDS = ("hesitation", "crossing", "enter_leave", "pan", "still")
HESITANT = (0, 3)  # circle and hexagon: the classes shapes11n-seg confuses
NAMES = dict(enumerate(synthetic.NAMES))
MIN_VISIBILITY = 0.5  # an object showing less of its area than this is ignored, not counted as a miss
MATCH_IOU = 0.5  # truth and track boxes are the same object at this IoU or more


@dataclass(frozen=True)
class Mover:
    """One object: class `kind`, radius in pixels, BGR colour, centre (x, y) in world pixels at frame 0 and its
    velocity per frame, turn theta0 + spin * frame; `shape_seed` fixes its shape (synthetic.shape_outline)."""

    kind: int
    radius: float
    colour: tuple[int, int, int]
    start: tuple[float, float]
    velocity: tuple[float, float]
    theta0: float
    spin: float
    shape_seed: int


@dataclass(frozen=True, eq=False)
class TrackVideo:
    """Frames (H, W, 3) uint8 BGR and, per frame, the truth: ids (K,) int64 (1-based, a mover's index + 1), visible
    boxes (K, 4) float32 [x0, y0, x1, y1) and visible masks (crop, origin) of the objects in sight, and the boxes
    (J, 4) float32 of objects too hidden to count (`ignore`)."""

    name: str
    frames: list[np.ndarray]
    ids: list[np.ndarray]
    boxes: list[np.ndarray]
    masks: list[list[tuple[np.ndarray, tuple[int, int]]]]
    ignore: list[np.ndarray]
    movers: tuple[Mover, ...]

    @property
    def objects(self) -> int:
        """How many different objects are in the truth."""
        return len({int(i) for ids in self.ids for i in ids})

    def __len__(self) -> int:
        return len(self.frames)


def make_track_video(kind: str, seed: int, width: int = 640, height: int = 480, frames: int = 120) -> TrackVideo:
    """A seeded video of `kind` (one of KINDS); the same arguments give the same video."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    side = min(width, height)
    pan = (0, 0)
    if kind == "pan":
        pan = (max(1, round(0.006 * side)), max(1, round(0.002 * side)))
    world = (width + pan[0] * frames, height + pan[1] * frames)
    canvas = synthetic.background(*world, seed=rng)
    builders = {"hesitation": _hesitation, "crossing": _crossing, "enter_leave": _enter_leave, "pan": _still,
                "still": _still}
    movers = tuple(builders[kind](rng, canvas, width, height, frames, world))
    video = TrackVideo(f"{kind}-{seed}-{width}x{height}", [], [], [], [], [], movers)
    for t in range(frames):
        view = canvas[pan[1] * t : pan[1] * t + height, pan[0] * t : pan[0] * t + width]
        _render(video, view, movers, t, (pan[0] * t, pan[1] * t), rng)
    return video


def _render(video: TrackVideo, view: np.ndarray, movers: tuple[Mover, ...], t: int, camera: tuple[int, int],
            rng: np.random.Generator) -> None:
    """Draws frame t (later movers in front) and appends it and its truth to the video."""
    height, width = view.shape[:2]
    image = view.copy()
    owner = np.zeros((height, width), np.int32)
    outlines = []
    for k, m in enumerate(movers, 1):
        cx = m.start[0] + m.velocity[0] * t - camera[0]
        cy = m.start[1] + m.velocity[1] * t - camera[1]
        points = synthetic.shape_outline(m.kind, cx, cy, m.radius, m.theta0 + m.spin * t, m.shape_seed)
        vertices = np.round(points).astype(np.int32)
        outlines.append(vertices)
        cv2.fillPoly(image, [vertices], m.colour, lineType=cv2.LINE_AA)
        cv2.fillPoly(owner, [vertices], k)
    noise = rng.normal(0, 3, image.shape).astype(np.float32)
    video.frames.append(np.clip(image + noise, 0, 255).astype(np.uint8))
    ids, boxes, masks, ignore = [], [], [], []
    for k, vertices in enumerate(outlines, 1):
        x0, y0 = np.maximum(vertices.min(0), 0)
        x1, y1 = np.minimum(vertices.max(0) + 1, (width, height))
        if x0 >= x1 or y0 >= y1:
            continue
        visible = owner[y0:y1, x0:x1] == k
        count = np.count_nonzero(visible)
        if count < synthetic.MIN_VISIBLE_PIXELS:
            continue
        rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
        box = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        if count < MIN_VISIBILITY * cv2.contourArea(vertices.astype(np.float32)):
            ignore.append(box)
            continue
        ids.append(k)
        boxes.append(box)
        crop = visible[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8)
        masks.append((crop, (int(box[0]), int(box[1]))))
    video.ids.append(np.array(ids, np.int64))
    video.boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
    video.masks.append(masks)
    video.ignore.append(np.array(ignore, np.float32).reshape(-1, 4))


# ---------------------------------------------------------------- the movers of each kind of video


def _kind(rng: np.random.Generator, hesitant: float = 0.75) -> int:
    if rng.random() < hesitant:
        return int(rng.choice(HESITANT))
    return int(rng.choice([1, 2, 4]))


def _colour(rng: np.random.Generator, canvas: np.ndarray, x: float, y: float,
            avoid: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """A random colour that stands out from the background around (x, y), so that the detector can see the object,
    and from `avoid`, the colour of an object it passes (two objects of one colour that overlap look like one)."""
    h, w = canvas.shape[:2]
    xi, yi = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
    around = [canvas[max(yi - 20, 0) : yi + 20, max(xi - 20, 0) : xi + 20].reshape(-1, 3).mean(0)]
    if avoid is not None:
        around.append(np.array(avoid, float))
    for _ in range(100):
        colour = rng.integers(0, 256, 3)
        if all(np.abs(colour - a).sum() > 150 for a in around):
            break
    return int(colour[0]), int(colour[1]), int(colour[2])


def _mover(rng: np.random.Generator, canvas: np.ndarray, kind: int, radius: float, start: tuple[float, float],
           velocity: tuple[float, float], spin: float, avoid: tuple[int, int, int] | None = None) -> Mover:
    return Mover(kind, radius, _colour(rng, canvas, *start, avoid), start, velocity, rng.uniform(0, 2 * math.pi), spin,
                 int(rng.integers(1 << 30)))


def _grid_cells(rng: np.random.Generator, count: int, width: float, height: float):
    """(cx, cy, cell size) of `count` cells of a jittered grid over width x height, in random order."""
    cols = max(1, round(math.sqrt(count * width / height)))
    rows = math.ceil(count / cols)
    cw, ch = width / cols, height / rows
    for cell in rng.permutation(rows * cols)[:count]:
        r, c = divmod(int(cell), cols)
        yield (c + 0.5 + rng.uniform(-0.1, 0.1)) * cw, (r + 0.5 + rng.uniform(-0.1, 0.1)) * ch, min(cw, ch)


def _hesitation(rng, canvas, width, height, frames, world):
    count = int(rng.integers(8, 11))
    for cx, cy, cell in _grid_cells(rng, count, width, height):
        radius = min(cell * rng.uniform(0.28, 0.36), 0.12 * min(width, height))
        angle = rng.uniform(0, 2 * math.pi)
        speed = 0.25 * cell / frames  # a quarter of a cell over the video: neighbours never meet
        yield _mover(rng, canvas, _kind(rng, 0.9), radius, (cx, cy), (speed * math.cos(angle), speed * math.sin(angle)),
                     rng.uniform(-0.03, 0.03))


def _still(rng, canvas, width, height, frames, world):
    """Still objects spread over the world (the frame, or the whole pan), about nine in a view."""
    side = min(width, height)
    count = max(1, round(9 * world[0] * world[1] / (width * height)))
    spin = 0.0 if world == (width, height) else 0.02
    for cx, cy, cell in _grid_cells(rng, count, *world):
        radius = min(cell * rng.uniform(0.28, 0.36), 0.12 * side)
        yield _mover(rng, canvas, _kind(rng), radius, (cx, cy), (0.0, 0.0), rng.uniform(-spin, spin))


def _lanes(rng: np.random.Generator, count: int, height: float, radius: float) -> np.ndarray:
    """`count` lane heights, at least 2.6 radii apart, in random order."""
    spacing = height / count
    if spacing < 2.6 * radius:
        raise ValueError(f"{count} lanes of radius {radius:.0f} do not fit a height of {height}")
    return (np.arange(count) + 0.5 + rng.uniform(-0.08, 0.08, count)) * spacing


def _crossing(rng, canvas, width, height, frames, world):
    side = min(width, height)
    radius = 0.08 * side
    lanes = _lanes(rng, 4, height, radius * 1.1)
    for lane in lanes[:3]:  # three crossing pairs, each at its own place and time
        meet_x, meet_t = rng.uniform(0.3, 0.7) * width, rng.uniform(0.25, 0.75) * frames
        behind = None
        for direction in (1, -1):
            speed = rng.uniform(0.005, 0.009) * side * direction
            dy = rng.uniform(-0.0015, 0.0015) * side
            r = radius * rng.uniform(0.9, 1.1)
            start = (meet_x - speed * meet_t, lane - dy * meet_t + rng.uniform(-0.15, 0.15) * radius)
            behind = _mover(rng, canvas, _kind(rng), r, start, (speed, dy), rng.uniform(-0.03, 0.03),
                            None if behind is None else behind.colour)
            yield behind
    for x in (rng.uniform(0.1, 0.4), rng.uniform(0.6, 0.9)):  # two more drifting in the fourth lane, apart
        yield _mover(rng, canvas, _kind(rng), radius * rng.uniform(0.9, 1.1), (x * width, lanes[3]),
                     (rng.uniform(-0.001, 0.001) * side, 0.0), rng.uniform(-0.03, 0.03))


def _enter_leave(rng, canvas, width, height, frames, world):
    side = min(width, height)
    radius = 0.08 * side
    for lane in _lanes(rng, 3, height, radius * 1.1):
        direction = rng.choice([-1, 1])
        speed = rng.uniform(0.008, 0.014) * side
        crossing = (width + 2 * radius) / speed  # frames an object takes to cross the frame
        gap = max(crossing / 2.5, 3 * radius / speed)
        first = rng.uniform(-0.3, 0.3) * crossing
        for start_t in np.arange(first, frames, gap * rng.uniform(1.0, 1.3)):
            x_at_start = -radius * 1.2 if direction > 0 else width + radius * 1.2
            x0 = x_at_start - direction * speed * start_t
            yield _mover(rng, canvas, _kind(rng), radius * rng.uniform(0.9, 1.1), (x0, lane), (direction * speed, 0.0),
                         rng.uniform(-0.03, 0.03))


# ---------------------------------------------------------------- detections made from the truth, without a model


def hesitant_detections(video: TrackVideo, seed: int, miss: float = 0.04) -> list[Results]:
    """Per frame, a Results of the truth as a hesitating detector would see it: every object in sight is detected
    (one in 1/miss missed) with its visible mask and box jittered; every circle and hexagon is detected twice, once
    as each, with overlapping boxes and scores that swap at random from frame to frame, as class-aware NMS leaves
    them. Detections are shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for image, ids, masks in zip(video.frames, video.ids, video.masks, strict=True):
        h, w = image.shape[:2]
        xyxy, conf, cls, crops, origins = [], [], [], [], []
        for k, (crop, origin) in zip(ids.tolist(), masks, strict=True):
            if rng.random() < miss:
                continue
            kind = video.movers[k - 1].kind
            classes = HESITANT if kind in HESITANT else (kind,)
            scores = rng.uniform(0.35, 0.6, len(classes))
            for c, s in zip(classes, scores, strict=True):
                box = np.array([*origin, origin[0] + crop.shape[1], origin[1] + crop.shape[0]], float)
                xyxy.append(np.clip(box + rng.normal(0, 1.0, 4), 0, [w, h, w, h]))
                conf.append(s)
                cls.append(c)
                crops.append(_jitter_mask(crop, rng))
                origins.append(origin)
        order = rng.permutation(len(xyxy))
        boxes = Boxes(np.array(xyxy, np.float32).reshape(-1, 4)[order], np.array(conf, np.float32)[order],
                      np.array(cls, np.int64)[order], (h, w))
        mask_set = Masks(tuple(crops[i] for i in order), np.array(origins, np.int64).reshape(-1, 2)[order], (h, w))
        out.append(Results(image, "synthetic", NAMES, boxes, mask_set))
    return out


def _jitter_mask(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask with a one-pixel erosion or dilation at random: two detections of one object differ a little."""
    kernel = np.ones((3, 3), np.uint8)
    pick = rng.integers(3)
    if pick == 0:
        return cv2.erode(crop, kernel)
    if pick == 1:
        return cv2.dilate(crop, kernel)
    return crop.copy()


# ---------------------------------------------------------------- identity metrics against the truth


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N, M) float64 of boxes x0, y0, x1, y1."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    wh = (np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def identity_metrics(video: TrackVideo, tracked: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """IDF1, MOTA, ID switches, fragmentations (py-motmetrics) and the number of track ids of `tracked`, per frame
    (ids (N,) int, boxes (N, 4) x0, y0, x1, y1), against the video's truth; truth and tracks are matched by box IoU
    >= MATCH_IOU. Tracks on ignored objects are dropped first, as MOTChallenge drops tracks on distractors."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    seen: set[int] = set()
    for truth_ids, truth_boxes, ignore, (ids, boxes) in zip(video.ids, video.boxes, video.ignore, tracked,
                                                             strict=True):
        ids, boxes = np.asarray(ids, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(ignore) and len(boxes):
            every = np.concatenate([truth_boxes, ignore])
            iou = box_iou(every, boxes)
            rows, cols = linear_sum_assignment(-iou)
            hidden = cols[(rows >= len(truth_boxes)) & (iou[rows, cols] >= MATCH_IOU)]
            keep = np.setdiff1d(np.arange(len(boxes)), hidden)
            ids, boxes = ids[keep], boxes[keep]
        seen.update(ids.tolist())
        distance = 1 - box_iou(truth_boxes, boxes)
        distance[distance > 1 - MATCH_IOU] = np.nan
        acc.update(truth_ids.tolist(), ids.tolist(), distance)
    names = ["idf1", "mota", "num_switches", "num_fragmentations"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="video")
    row = summary.loc["video"]
    return {"idf1": float(row["idf1"]), "mota": float(row["mota"]), "switches": int(row["num_switches"]),
            "fragmentations": int(row["num_fragmentations"]), "track_ids": len(seen)}


def tracked_of(results: Results) -> tuple[np.ndarray, np.ndarray]:
    """(ids, boxes) of one tracked frame, for identity_metrics."""
    return results.boxes.id, results.boxes.xyxy


def hesitation_rate(video: TrackVideo, detections: list[Results]) -> float:
    """The share of object-frames in the truth that the detector covers with two or more boxes of different classes
    (each at box IoU >= MATCH_IOU with the object's box): how much the detector hesitates on this video."""
    both = total = 0
    for boxes, result in zip(video.boxes, detections, strict=True):
        total += len(boxes)
        if not len(boxes) or not len(result):
            continue
        near = box_iou(boxes, result.boxes.xyxy) >= MATCH_IOU
        for row in near:
            both += len(np.unique(result.boxes.cls[row])) >= 2
    return both / max(total, 1)


def switch_budget(video: TrackVideo) -> float:
    """The most ID switches the targets allow on this video: one per 10 objects per 100 frames."""
    return video.objects / 10 * len(video) / 100


def ultralytics_tracked(model: str, video: TrackVideo, tracker: str,
                        conf: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, boxes) per frame from Ultralytics' model.track(frame, persist=True) with its tracker file `tracker`
    ("bytetrack.yaml" or "botsort.yaml"), frame by frame, with the detector's default settings (conf None: track's
    own default, 0.1)."""
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="segment")
    out = []
    for frame in video.frames:
        boxes = yolo.track(frame, persist=True, tracker=tracker, conf=conf, iou=0.7, retina_masks=True,
                           verbose=False)[0].boxes
        ids = np.zeros(0, np.int64) if boxes.id is None else boxes.id.cpu().numpy().astype(np.int64)
        out.append((ids, boxes.xyxy.cpu().numpy()[: len(ids)] if len(ids) else np.zeros((0, 4), np.float32)))
    return out

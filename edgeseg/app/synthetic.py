"""Seeded synthetic scenes with ground truth: filled shapes on textured backgrounds, BGR uint8.

This is the distribution the demo and test model shapes11n-seg was trained on (the scenes of
shared/tools/make_shapes.py, drawn here with the same random calls in the same order): five
classes (NAMES) of random colour and rotation, radii 4-22% of the shorter image side, on a
flat, gradient or blurred-noise background with pixel noise. Later shapes cover earlier ones,
so the ground truth of each object is its visible region.

    scene = make_scene(640, 480, objects=6, seed=0)          # jittered grid: objects rarely hide each other
    scene = make_scene(320, 320, (1, 12), rng, "random")      # a training image: 1-12 shapes anywhere
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError

NAMES = ("circle", "rectangle", "triangle", "hexagon", "star")
LAYOUTS = ("grid", "random")
# An object that shows fewer pixels than this is no object, as in the training labels.
MIN_VISIBLE_PIXELS = 30


@dataclass(frozen=True, eq=False)
class Scene:
    """A synthetic image and its N visible objects, in drawing order (later ones on top).

    image (H, W, 3) uint8 BGR; classes (N,) int64, indices into NAMES; instance_ids (H, W) int32,
    0 for background (and for shapes hidden below MIN_VISIBLE_PIXELS), i + 1 where object i is
    visible; polygons[i] (K_i, 2) float32 pixel outline of the largest visible part of object i;
    boxes (N, 4) float32 pixel box (x0, y0, x1, y1), x1 and y1 exclusive, of its visible pixels.
    """

    image: np.ndarray
    classes: np.ndarray
    instance_ids: np.ndarray
    polygons: tuple[np.ndarray, ...]
    boxes: np.ndarray

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        n = len(self.classes)
        if self.image.dtype != np.uint8 or self.image.shape != (h, w, 3):
            raise ValueError(f"image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.classes.dtype != np.int64 or self.classes.shape != (n,):
            raise ValueError(f"classes must be (N,) int64, got {self.classes.shape} {self.classes.dtype}")
        if self.instance_ids.dtype != np.int32 or self.instance_ids.shape != (h, w):
            raise ValueError(f"instance_ids must be ({h}, {w}) int32, got {self.instance_ids.shape} "
                             f"{self.instance_ids.dtype}")
        if len(self.polygons) != n or self.boxes.shape != (n, 4) or self.boxes.dtype != np.float32:
            raise ValueError(f"{n} classes need {n} polygons and (N, 4) float32 boxes, "
                             f"got {len(self.polygons)} and {self.boxes.shape} {self.boxes.dtype}")

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.instance_ids.shape  # type: ignore[return-value]

    def mask(self, i: int) -> np.ndarray:
        """Object i's visible region (H, W) bool."""
        if not 0 <= i < len(self):
            raise IndexError(f"object {i} out of range for {len(self)} objects")
        return self.instance_ids == i + 1

    @property
    def masks(self) -> np.ndarray:
        """Dense visible regions (N, H, W) uint8 0/1. Built on each access."""
        ids = np.arange(1, len(self) + 1, dtype=np.int32)[:, None, None]
        return (self.instance_ids[None] == ids).astype(np.uint8)

    @property
    def areas(self) -> np.ndarray:
        """Visible pixel counts (N,) int64."""
        return np.bincount(self.instance_ids.ravel(), minlength=len(self) + 1)[1:].astype(np.int64)

    def yolo_labels(self) -> str:
        """The Ultralytics YOLO-seg label file: one line per object, class then its polygon normalised to [0, 1]."""
        h, w = self.shape
        lines = [f"{c} " + " ".join(f"{v:.5f}" for v in (p / np.array([w, h])).reshape(-1)) + "\n"
                 for c, p in zip(self.classes, self.polygons, strict=True)]
        return "".join(lines)


def make_scene(
    width: int,
    height: int,
    objects: int | tuple[int, int],
    seed: int | np.random.Generator = 0,
    layout: str = "grid",
) -> Scene:
    """A (height, width) scene of filled shapes; the same seed gives the same scene.

    objects: how many shapes to draw, or (low, high) to draw the count uniformly from (after the
    background, as the training data did). seed: an int, or a Generator to draw from (successive
    scenes of a dataset). layout: "grid" puts one shape in each jittered cell of a grid, so crowded
    scenes stay separable; "random" places them anywhere with any overlap, as the training data.
    """
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))
            and width >= 8 and height >= 8):
        raise ConfigError(f"scene size must be integers of at least 8x8 pixels, got {width}x{height}")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    fixed = isinstance(objects, (int, np.integer))
    counts = (objects, objects) if fixed else tuple(objects)  # type: ignore[arg-type]
    if len(counts) != 2 or not 0 <= counts[0] <= counts[1]:
        raise ConfigError(f"objects must be a count >= 0 or a range (low, high) with 0 <= low <= high, got {objects!r}")
    if layout == "grid" and not fixed:
        raise ConfigError("the grid layout takes an object count, not a range")

    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    image = _background(width, height, rng)
    ids = np.zeros((height, width), np.int32)
    if layout == "grid":
        placements = _grid(width, height, int(objects), rng)  # type: ignore[arg-type]
    else:
        count = int(objects) if fixed else int(rng.integers(counts[0], counts[1] + 1))
        placements = _anywhere(width, height, count, rng)
    drawn: list[tuple[int, np.ndarray]] = []
    for k, (kind, cx, cy, radius) in enumerate(placements, 1):
        points = _polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        vertices = np.round(points).astype(np.int32)
        cv2.fillPoly(image, [vertices], color, lineType=cv2.LINE_AA)
        cv2.fillPoly(ids, [vertices], k)
        drawn.append((kind, vertices))
    return _ground_truth(image, ids, drawn)


def _grid(width: int, height: int, objects: int, rng: np.random.Generator):
    """(kind, cx, cy, radius) for one shape per cell of a jittered grid of about square cells."""
    if objects == 0:
        return
    cols = max(1, round(math.sqrt(objects * width / height)))
    rows = math.ceil(objects / cols)
    cell_w, cell_h = width / cols, height / rows
    for cell in rng.permutation(rows * cols)[:objects]:
        r, c = divmod(int(cell), cols)
        # at most 0.2 of the shorter side: inside the 4%-22% the model was trained on
        radius = min(min(cell_w, cell_h) * rng.uniform(0.3, 0.55), 0.2 * min(width, height))
        cx = (c + 0.5 + rng.uniform(-0.15, 0.15)) * cell_w
        cy = (r + 0.5 + rng.uniform(-0.15, 0.15)) * cell_h
        yield int(rng.integers(len(NAMES))), cx, cy, radius


def _anywhere(width: int, height: int, objects: int, rng: np.random.Generator):
    """(kind, cx, cy, radius) placed as in training: centres anywhere, radii 4%-22% of the shorter side."""
    side = min(width, height)
    for _ in range(objects):
        kind = int(rng.integers(0, len(NAMES)))
        radius = rng.uniform(side * 0.04, side * 0.22)
        yield kind, rng.uniform(0, width), rng.uniform(0, height), radius


def _polygon(kind: int, cx: float, cy: float, r: float, theta: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) float64 vertices of shape `kind` (an index into NAMES)."""
    if kind == 1:  # rectangle: random aspect, rotated
        w, h = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.4, 1.0)
        c, s = math.cos(theta), math.sin(theta)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
        return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
    vertices, radii = {0: (48, (r,)), 2: (3, (r,)), 3: (6, (r,)), 4: (10, (r, 0.45 * r))}[kind]
    angles = np.linspace(0, 2 * math.pi, vertices, endpoint=False) + (0 if kind == 0 else theta)
    rr = np.resize(np.array(radii), vertices)
    ry = rr * (rng.uniform(0.85, 1.0) if kind == 0 else 1.0)  # circles are slightly elliptic, never rotated
    return np.stack([cx + rr * np.cos(angles), cy + ry * np.sin(angles)], 1)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Flat, vertical gradient or blurred-noise background, with Gaussian pixel noise of random strength."""
    kind = rng.integers(0, 3)
    if kind == 0:
        image = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    elif kind == 1:
        g = np.linspace(0, 1, height)[:, None, None]
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        image = np.broadcast_to(top * (1 - g) + bottom * g, (height, width, 3)).astype(np.uint8)
    else:
        small = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3)).astype(np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, rng.uniform(0, 12), image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _ground_truth(image: np.ndarray, ids: np.ndarray, drawn: list[tuple[int, np.ndarray]]) -> Scene:
    """Keeps the shapes that stay visible and outlines each one, looking only inside its own box."""
    height, width = ids.shape
    classes, polygons, boxes = [], [], []
    relabel = np.zeros(len(drawn) + 1, np.int32)
    for k, (kind, vertices) in enumerate(drawn, 1):
        # the shape's pixels lie inside its vertices' box; one pixel of margin so that
        # findContours sees the same neighbourhood as on the whole frame
        x0, y0 = np.maximum(vertices.min(0) - 1, 0)
        x1, y1 = np.minimum(vertices.max(0) + 2, (width, height))
        if x0 >= x1 or y0 >= y1:
            continue  # entirely outside the frame
        visible = (ids[y0:y1, x0:x1] == k).astype(np.uint8)
        if np.count_nonzero(visible) < MIN_VISIBLE_PIXELS:
            continue
        contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(int(x0), int(y0)))
        outline = max(contours, key=cv2.contourArea).reshape(-1, 2)
        if len(outline) < 3:
            continue
        rows, cols = np.nonzero(visible.any(1))[0], np.nonzero(visible.any(0))[0]
        boxes.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
        classes.append(kind)
        polygons.append(outline.astype(np.float32))
        relabel[k] = len(classes)
    return Scene(
        image=image,
        classes=np.array(classes, np.int64),
        instance_ids=relabel[ids],
        polygons=tuple(polygons),
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
    )


def panning_frames(width: int, height: int, objects: int, frames: int, seed: int = 0,
                   step: tuple[int, int] = (4, 2)) -> Iterator[np.ndarray]:
    """`frames` (height, width, 3) uint8 BGR frames of one scene seen by a camera panning `step` (dx, dy) pixels a
    frame: every object moves, none changes, for video tests and benchmarks."""
    if frames < 0:
        raise ConfigError(f"frames must be >= 0, got {frames}")
    dx, dy = abs(step[0]), abs(step[1])
    canvas = make_scene(width + dx * frames, height + dy * frames, objects, seed).image
    for t in range(frames):
        yield np.ascontiguousarray(canvas[dy * t : dy * t + height, dx * t : dx * t + width])


def shape_outline(kind: int, cx: float, cy: float, radius: float, theta: float,
                  seed: int | np.random.Generator = 0) -> np.ndarray:
    """The (n, 2) float64 vertices of a shape of class `kind` (an index into NAMES) as make_scene draws it, centred
    at (cx, cy) and turned by theta radians. A circle's ellipticity and a rectangle's sides come from `seed`: the same
    seed gives the same shape wherever it is drawn, so a moving object keeps its shape from frame to frame."""
    if not 0 <= kind < len(NAMES):
        raise ConfigError(f"kind must be a class index 0-{len(NAMES) - 1} ({', '.join(NAMES)}), got {kind!r}")
    return _polygon(int(kind), cx, cy, radius, theta, np.random.default_rng(seed))


def background(width: int, height: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A (height, width, 3) uint8 BGR background as make_scene draws one: flat, gradient or blurred noise, with
    pixel noise."""
    return _background(width, height, np.random.default_rng(seed))

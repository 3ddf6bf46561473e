"""Seeded synthetic scenes for the benchmarks: filled shapes on a textured background, BGR uint8.

The shapes are the five classes the test model shapes11n-seg was trained on (circle, rectangle,
triangle, hexagon, star). Objects are spread over a jittered grid so that "many" scenes stay
detectable instead of one pile of occluded shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODEL = Path("/work/shared/models/shapes11n-seg.onnx")
NAMES = ("circle", "rectangle", "triangle", "hexagon", "star")


@dataclass(frozen=True)
class Scene:
    """One benchmark case: frame size, object count, and the confidence threshold to predict with."""

    name: str
    width: int
    height: int
    objects: int
    conf: float = 0.25
    seed: int = 0

    def image(self) -> np.ndarray:
        return make_scene(self.width, self.height, self.objects, self.seed)


SCENES = (
    Scene("640x480-few", 640, 480, 3),
    Scene("640x480-many", 640, 480, 24),
    Scene("1920x1080-few", 1920, 1080, 3),
    Scene("1920x1080-many", 1920, 1080, 24),
)


def make_scene(width: int, height: int, objects: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 BGR frame holding `objects` filled shapes; the same seed gives the same frame."""
    rng = np.random.default_rng(seed)
    image = _background(width, height, rng)
    # one grid cell per object, so shapes overlap a little but rarely hide each other
    cols = max(1, round(math.sqrt(objects * width / height)))
    rows = math.ceil(objects / cols)
    cell_w, cell_h = width / cols, height / rows
    cells = rng.permutation(rows * cols)[:objects]
    for cell in cells:
        r, c = divmod(int(cell), cols)
        # the model was trained on radii of 4%-22% of the image side
        radius = min(min(cell_w, cell_h) * rng.uniform(0.3, 0.55), 0.2 * min(width, height))
        cx = (c + 0.5 + rng.uniform(-0.15, 0.15)) * cell_w
        cy = (r + 0.5 + rng.uniform(-0.15, 0.15)) * cell_h
        points = _polygon(int(rng.integers(len(NAMES))), cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.fillPoly(image, [np.round(points).astype(np.int32)], color, lineType=cv2.LINE_AA)
    return image


def _polygon(kind: int, cx: float, cy: float, r: float, theta: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) float vertices of shape `kind` (an index into NAMES)."""
    if kind == 1:  # rectangle: random aspect, rotated
        w, h = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.4, 1.0)
        c, s = math.cos(theta), math.sin(theta)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
        return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
    vertices, radii = {0: (48, (r,)), 2: (3, (r,)), 3: (6, (r,)), 4: (10, (r, 0.45 * r))}[kind]
    angles = np.linspace(0, 2 * math.pi, vertices, endpoint=False) + (0 if kind == 0 else theta)
    rr = np.resize(np.array(radii), vertices)
    ry = rr * (rng.uniform(0.85, 1.0) if kind == 0 else 1.0)  # slightly elliptic circles, as in training
    return np.stack([cx + rr * np.cos(angles), cy + ry * np.sin(angles)], 1)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Flat, gradient or blurred-noise background with pixel noise on top."""
    kind = rng.integers(3)
    if kind == 0:
        image = np.full((height, width, 3), rng.integers(0, 256, 3), np.float64)
    elif kind == 1:
        g = np.linspace(0, 1, height)[:, None, None]
        image = np.broadcast_to(rng.integers(0, 256, 3) * (1 - g) + rng.integers(0, 256, 3) * g, (height, width, 3))
    else:
        small = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3)).astype(np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    noise = rng.normal(0, rng.uniform(0, 12), (height, width, 3))
    return np.clip(image + noise, 0, 255).astype(np.uint8)

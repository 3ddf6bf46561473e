"""The benchmark cases: seeded synthetic scenes (edgeseg.app.synthetic) and the model they are timed on.

The shapes are the five classes the test model shapes11n-seg was trained on (circle, rectangle,
triangle, hexagon, star). Objects are spread over a jittered grid so that "many" scenes stay
detectable instead of one pile of occluded shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.app import synthetic

# the project's shared folder sits beside the repository; EDGESEG_SHARED points elsewhere (as in tests/conftest.py)
SHARED = Path(os.environ.get("EDGESEG_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
MODEL = SHARED / "models" / "shapes11n-seg.onnx"
NAMES = synthetic.NAMES


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
    """A (height, width, 3) uint8 BGR frame holding `objects` filled shapes on a grid; the same seed gives the same
    frame."""
    return synthetic.make_scene(width, height, objects, seed, layout="grid").image

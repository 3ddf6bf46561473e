"""Session-scoped, seeded fixtures for the runtime benchmarks.

Everything expensive (sessions, Numba compilation, Ultralytics' predictor) is built and warmed up
once per session, so the benchmarks time steady-state calls only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scenes import MODEL, SCENES, Scene

from edgeseg import Segmenter
from edgeseg.inputs.letterbox import Letterbox
from edgeseg.postprocess.cpu import Detections, decode_raw


@dataclass(frozen=True)
class EdgesegStages:
    """The inputs of each edgeseg stage for one scene, computed once."""

    tensor: np.ndarray  # (1, 3, 640, 640) float32, a copy (the Preprocessor reuses its buffer)
    letterbox: Letterbox
    det: np.ndarray  # (4 + nc + nm, anchors) float32 raw head output
    protos: np.ndarray  # (nm, mh, mw) float32
    found: Detections


def pytest_configure(config: pytest.Config) -> None:
    if not MODEL.exists():
        raise pytest.UsageError(f"benchmark model not found: {MODEL}")


@pytest.fixture(scope="session", params=SCENES, ids=lambda s: s.name)
def scene(request: pytest.FixtureRequest) -> Scene:
    return request.param


@pytest.fixture(scope="session")
def image(scene: Scene) -> np.ndarray:
    return scene.image()


@pytest.fixture(scope="session")
def segmenters():
    """One warmed-up Segmenter per confidence threshold the scenes use (warmup compiles the kernels)."""
    segs = {conf: Segmenter(MODEL, conf=conf) for conf in sorted({s.conf for s in SCENES})}
    for seg in segs.values():
        seg.warmup()
    yield segs
    for seg in segs.values():
        seg.close()


@pytest.fixture(scope="session")
def segmenter(scene: Scene, segmenters: dict[float, Segmenter]) -> Segmenter:
    return segmenters[scene.conf]


@pytest.fixture(scope="session")
def stages(segmenter: Segmenter, image: np.ndarray) -> EdgesegStages:
    tensor, (letterbox,) = segmenter.preprocess([image])
    tensor = tensor.copy()
    outputs = segmenter.backend.infer(tensor)
    det, protos = (output[0] for output in segmenter.spec.split(outputs))
    found = decode_raw(det, segmenter.num_classes, segmenter.config)
    return EdgesegStages(tensor, letterbox, det, protos, found)


@pytest.fixture(scope="session")
def session():
    """A bare onnxruntime session with default options: the floor for the inference stage."""
    import onnxruntime as ort

    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def yolo():
    """Ultralytics on the same ONNX file, warmed up on every scene so its predictor exists."""
    from ultralytics import YOLO

    model = YOLO(str(MODEL), task="segment")
    for s in SCENES:
        model.predict(s.image(), conf=s.conf, retina_masks=True, verbose=False)
    return model


@pytest.fixture
def ultralytics_predictor(yolo, scene: Scene, image: np.ndarray):
    """Ultralytics' predictor primed with this scene: one predict call sets its args (conf) and current batch,
    which its postprocess reads. Function-scoped because every scene re-primes the one predictor."""
    yolo.predict(image, conf=scene.conf, retina_masks=True, verbose=False)
    return yolo.predictor

"""What the tests share besides fixtures: the project's test models and data, exporting with Ultralytics, a labelled
dataset of synthetic scenes, the real command in a subprocess, and mask IoU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGESEG_SHARED", REPO.parent / "shared"))
SHAPES_PT = SHARED / "models" / "shapes11n-seg.pt"
SHAPES_ONNX = SHARED / "models" / "shapes11n-seg.onnx"
VAL_DIR = SHARED / "data" / "shapes-seg" / "images" / "val"
NAMES_YAML = "names: [circle, rectangle, triangle, hexagon, star]\n"  # the synthetic shapes' classes


def export_onnx(tmp_path_factory, source: str | Path, name: str, **kwargs) -> Path:
    """Exports a checkpoint or YAML with Ultralytics into a fresh folder; returns the ONNX path."""
    ultralytics = pytest.importorskip("ultralytics")
    folder = tmp_path_factory.mktemp(name)
    if isinstance(source, Path):  # Ultralytics writes next to the checkpoint: copy it out of read-only shared/
        source = Path(shutil.copy(source, folder / source.name))
    else:  # a model built from YAML has random weights: the same ones every run, so every run tests the same model
        import torch

        torch.manual_seed(1)  # seed 0 happens to give a random80 model with no score above 1e-5
    exported = ultralytics.YOLO(str(source)).export(format="onnx", **kwargs)
    target = folder / f"{name}.onnx"
    shutil.move(exported, target)
    return target


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def edgeseg_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `edgeseg` command in a subprocess (python -m edgeseg), output captured as text."""
    return subprocess.run([sys.executable, "-m", "edgeseg", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def read_back(path: Path) -> tuple[int, tuple[int, int]]:
    """A video file's frames decoded one by one, and its (width, height)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return count, size


def write_dataset(root: Path, scenes: dict) -> Path:
    """An Ultralytics-format segmentation dataset of synthetic scenes ({file name: edgeseg.app.synthetic.Scene}):
    images/val/*.png and labels/val/*.txt (from each scene's exact outlines; none for an empty scene), and a
    data.yaml with a relative path:. Returns the yaml."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for name, scene in scenes.items():
        cv2.imwrite(str(root / "images" / "val" / name), scene.image)
        if len(scene):
            (root / "labels" / "val" / f"{Path(name).stem}.txt").write_text(scene.yolo_labels())
    (root / "data.yaml").write_text("path: .\nval: images/val\n" + NAMES_YAML)
    return root / "data.yaml"


def assert_same_results(a, b) -> None:
    """Two Results hold the same objects: boxes, scores and classes bit for bit, the mask crops and where they sit."""
    assert len(a) == len(b) and a.orig_shape == b.orig_shape
    np.testing.assert_array_equal(a.boxes.xyxy, b.boxes.xyxy)
    np.testing.assert_array_equal(a.boxes.conf, b.boxes.conf)
    np.testing.assert_array_equal(a.boxes.cls, b.boxes.cls)
    np.testing.assert_array_equal(a.masks.origins, b.masks.origins)
    for x, y in zip(a.masks.crops, b.masks.crops, strict=True):
        np.testing.assert_array_equal(x, y)

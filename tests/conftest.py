"""Shared fixtures: the project's test models (../shared/models) and ONNX files exported once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGESEG_SHARED", REPO.parent / "shared"))
SHAPES_PT = SHARED / "models" / "shapes11n-seg.pt"
SHAPES_ONNX = SHARED / "models" / "shapes11n-seg.onnx"
VAL_DIR = SHARED / "data" / "shapes-seg" / "images" / "val"

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks or downloads in tests


@pytest.fixture(scope="session")
def shapes_onnx() -> Path:
    if not SHAPES_ONNX.exists():
        pytest.fail(f"test model missing: {SHAPES_ONNX} (set EDGESEG_SHARED to the shared folder)")
    return SHAPES_ONNX


@pytest.fixture(scope="session")
def val_images() -> list[Path]:
    files = sorted(VAL_DIR.glob("*.jpg"))
    if not files:
        pytest.fail(f"no validation images in {VAL_DIR}")
    return files


def _export(tmp_path_factory, source: str | Path, name: str, **kwargs) -> Path:
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


@pytest.fixture(scope="session")
def random80_onnx(tmp_path_factory) -> Path:
    """A randomly initialised 80-class YOLO11n-seg (no names in a YAML-built model: Ultralytics writes class0..)."""
    return _export(tmp_path_factory, "yolo11n-seg.yaml", "random80", imgsz=320)


@pytest.fixture(scope="session")
def shapes_dynamic_onnx(tmp_path_factory) -> Path:
    return _export(tmp_path_factory, SHAPES_PT, "shapes-dynamic", imgsz=320, dynamic=True)


@pytest.fixture(scope="session")
def shapes_nms_onnx(tmp_path_factory) -> Path:
    """The shapes model with NMS in the graph: output (1, 300, 6 + 32)."""
    return _export(tmp_path_factory, SHAPES_PT, "shapes-nms", imgsz=320, nms=True)


@pytest.fixture(scope="session")
def yolo26_onnx(tmp_path_factory) -> Path:
    """A randomly initialised end-to-end YOLO26n-seg (one-to-one head, no NMS needed)."""
    return _export(tmp_path_factory, "yolo26n-seg.yaml", "yolo26", imgsz=320, nms=False)


@pytest.fixture(scope="session")
def detect_onnx(tmp_path_factory) -> Path:
    """A detection-only model: not a segmentation model."""
    return _export(tmp_path_factory, "yolo11n.yaml", "detect", imgsz=160)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def edgeseg_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `edgeseg` command in a subprocess (python -m edgeseg.cli), output captured as text."""
    return subprocess.run([sys.executable, "-m", "edgeseg.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)

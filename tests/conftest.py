"""Shared fixtures: the project's test models (../shared/models) and ONNX files exported once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.common import SHAPES_ONNX, SHAPES_PT, VAL_DIR, export_onnx

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


@pytest.fixture(scope="session")
def random80_onnx(tmp_path_factory) -> Path:
    """A randomly initialised 80-class YOLO11n-seg (no names in a YAML-built model: Ultralytics writes class0..)."""
    return export_onnx(tmp_path_factory, "yolo11n-seg.yaml", "random80", imgsz=320)


@pytest.fixture(scope="session")
def shapes_dynamic_onnx(tmp_path_factory) -> Path:
    return export_onnx(tmp_path_factory, SHAPES_PT, "shapes-dynamic", imgsz=320, dynamic=True)


@pytest.fixture(scope="session")
def shapes_nms_onnx(tmp_path_factory) -> Path:
    """The shapes model with NMS in the graph: output (1, 300, 6 + 32)."""
    return export_onnx(tmp_path_factory, SHAPES_PT, "shapes-nms", imgsz=320, nms=True)


@pytest.fixture(scope="session")
def yolo26_onnx(tmp_path_factory) -> Path:
    """A randomly initialised end-to-end YOLO26n-seg (one-to-one head, no NMS needed)."""
    return export_onnx(tmp_path_factory, "yolo26n-seg.yaml", "yolo26", imgsz=320, nms=False)


@pytest.fixture(scope="session")
def detect_onnx(tmp_path_factory) -> Path:
    """A detection-only model: not a segmentation model."""
    return export_onnx(tmp_path_factory, "yolo11n.yaml", "detect", imgsz=160)

"""Files shipped inside the package: the demo model (see README.md in this folder for how it was made)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import ModelNotFoundError

DEMO_MODEL = "shapes11n-seg-320.onnx"


def demo_model_path() -> Path:
    """The shipped demo model: YOLO11n-seg for five synthetic shapes, ONNX, input (1, 3, 320, 320) float32."""
    resource = files(__name__) / DEMO_MODEL
    # onnxruntime opens a file path; a package installed as a plain folder (pip's way) gives one
    if not isinstance(resource, Path) or not resource.is_file():
        raise ModelNotFoundError(
            f"the demo model {DEMO_MODEL} is not in the installed package ({resource}); reinstall edgeseg, "
            "or make it with: python export/make_demo_model.py --checkpoint ../shared/models/shapes11n-seg.pt")
    return resource

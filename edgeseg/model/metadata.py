"""What a model file says about itself: Ultralytics' ONNX metadata, parsed once."""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import NotSegmentationModelError

log = logging.getLogger(__name__)

COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class ModelMetadata:
    """Ultralytics export metadata; every field is None where the file does not say."""

    names: dict[int, str] | None = None
    imgsz: tuple[int, int] | None = None
    stride: int | None = None
    task: str | None = None
    end2end: bool | None = None
    batch: int | None = None
    dynamic: bool | None = None

    @classmethod
    def from_strings(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Parses ONNX `metadata_props` as Ultralytics writes them (Python literals as strings)."""

        def literal(key: str) -> Any:
            value = props.get(key)
            if value is None:
                return None
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value

        names = literal("names")
        if isinstance(names, (list, tuple)):
            names = dict(enumerate(names))
        names = {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else None
        imgsz = literal("imgsz")
        if isinstance(imgsz, int):
            imgsz = (imgsz, imgsz)
        imgsz = tuple(int(v) for v in imgsz) if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 else None
        args = literal("args")
        args = args if isinstance(args, dict) else {}
        end2end = literal("end2end")
        end2end = bool(end2end) or bool(args.get("nms")) if end2end is not None or "nms" in args else None
        task = props.get("task")
        dynamic = args.get("dynamic")
        return cls(
            names=names,
            imgsz=imgsz,
            stride=_int_or_none(literal("stride")),
            task=task,
            end2end=end2end,
            batch=_int_or_none(literal("batch")),
            dynamic=bool(dynamic) if dynamic is not None else None,
        )

    def check_task(self, model: str) -> None:
        if self.task is not None and self.task != "segment":
            raise NotSegmentationModelError(
                f"{model} is a YOLO '{self.task}' model, not a segmentation model; "
                "export a '-seg' checkpoint (e.g. yolo11n-seg.pt)"
            )


def class_names(metadata: ModelMetadata, num_classes: int) -> dict[int, str]:
    """The model's class names; COCO's for an 80-class model without names; else 'class0', 'class1', ..."""
    if metadata.names is not None:
        if len(metadata.names) != num_classes:
            log.warning("model metadata has %d names but %d classes", len(metadata.names), num_classes)
        return {i: metadata.names.get(i, f"class{i}") for i in range(num_classes)}
    if num_classes == len(COCO_NAMES):
        return dict(enumerate(COCO_NAMES))
    return {i: f"class{i}" for i in range(num_classes)}


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

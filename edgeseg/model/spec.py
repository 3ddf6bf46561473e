"""What a segmentation model is, read once from its backend: head kind, classes, prototypes, input size and batch."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import PredictConfig
from ..errors import ConfigError, NotSegmentationModelError
from .backends import Backend
from .metadata import ModelMetadata, class_names

log = logging.getLogger(__name__)

# the input dtypes the preprocessing writes (the image scaled to [0, 1])
INPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


@dataclass(frozen=True)
class ModelSpec:
    """A YOLO segmentation model as the runtime sees it.

    end2end: NMS in the graph, detections (B, K, 6 + nm); else raw detections (B, 4 + nc + nm, A).
    det_index: which of the two outputs holds the detections (the other holds the (B, nm, mh, mw) prototypes).
    imgsz: the (h, w) the network runs at; dynamic_hw: it takes any size (letterboxed to a multiple of stride).
    fixed_batch: the batch size the model requires, or None for a dynamic batch.
    """

    name: str
    end2end: bool
    det_index: int
    num_classes: int
    num_protos: int
    names: dict[int, str]
    stride: int
    imgsz: tuple[int, int]
    dynamic_hw: bool
    fixed_batch: int | None
    input_dtype: np.dtype

    @classmethod
    def inspect(cls, backend: Backend, config: PredictConfig, name: str) -> ModelSpec:
        """Checks that `backend` runs a YOLO segmentation model that `config` can use; NotSegmentationModelError (its
        outputs, its input's shape, or an input dtype other than float32 and float16) or ConfigError (naming the model
        file `name`) otherwise."""
        meta = ModelMetadata.from_strings(backend.metadata)
        meta.check_task(name)
        shapes = [o.shape for o in backend.outputs]
        if len(shapes) != 2 or sorted(len(s) for s in shapes) != [3, 4]:
            raise NotSegmentationModelError(
                f"{name} is not a YOLO segmentation model: it has outputs {shapes}, a segmentation model has two, "
                "detections (B, 4 + nc + nm, anchors) or (B, max_det, 6 + nm), and prototypes (B, nm, mh, mw)")
        det_index = 0 if len(shapes[0]) == 3 else 1
        end2end, num_classes, num_protos = _head(name, meta, shapes[det_index], shapes[1 - det_index])
        check_classes(config.classes, num_classes, name)
        stride = meta.stride or 32
        inp = backend.input
        if len(inp.shape) != 4 or inp.shape[1] not in (3, None):
            raise NotSegmentationModelError(f"{name}: input must be (B, 3, H, W), got {inp.shape}")
        if np.dtype(inp.dtype) not in INPUT_DTYPES:  # else it loads, then every image fails with a TypeError
            raise NotSegmentationModelError(
                f"{name}: input must be float32 or float16, got {np.dtype(inp.dtype)}; edgeseg feeds the image "
                "scaled to [0, 1]: export the model with a float input (Ultralytics' default)")
        fixed_hw = inp.shape[2:] if None not in inp.shape[2:] else None
        return cls(name=name, end2end=end2end, det_index=det_index, num_classes=num_classes, num_protos=num_protos,
                   names=class_names(meta, num_classes), stride=stride,
                   imgsz=_input_size(name, fixed_hw, config.imgsz, stride), dynamic_hw=fixed_hw is None,
                   fixed_batch=inp.shape[0], input_dtype=np.dtype(inp.dtype))

    def split(self, outputs: Sequence[Any]) -> tuple[Any, Any]:
        """The network's two outputs as (detections, prototypes)."""
        return outputs[self.det_index], outputs[1 - self.det_index]


def check_classes(classes: int | tuple[int, ...] | None, num_classes: int, name: str) -> None:
    """ConfigError for a class filter naming a class that model `name` does not have: it could only ever find
    nothing. A model whose class count is unknown (0) takes any."""
    unknown = [c for c in ((classes,) if isinstance(classes, int) else classes or ()) if c >= num_classes]
    if unknown and num_classes:
        raise ConfigError(f"classes {unknown} are not classes of {name}: it has {num_classes} (0 to "
                          f"{num_classes - 1})")


def _head(name: str, meta: ModelMetadata, det_shape: tuple, proto_shape: tuple) -> tuple[bool, int, int]:
    """(end2end, number of classes, number of prototypes) from the output shapes and the metadata."""
    nm = proto_shape[1]
    if nm is None:
        raise NotSegmentationModelError(f"{name}: the prototype count (output dim 1) must be fixed, got {proto_shape}")
    rows, cols = det_shape[1], det_shape[2]
    nc_meta = len(meta.names) if meta.names else None
    if meta.end2end is not None:
        end2end = meta.end2end
    else:  # no metadata: an NMS-in-graph output is (B, K, 6 + nm) while a raw one is (B, 4 + nc + nm, A)
        end2end = cols == 6 + nm and (rows is None or nc_meta is None or rows != 4 + nc_meta + nm)
    if end2end:
        if cols != 6 + nm:
            raise NotSegmentationModelError(f"{name}: NMS-in-graph output must be (B, K, {6 + nm}), got {det_shape}")
        return True, nc_meta or (80 if meta.names is None else 0), nm
    if rows is None or rows - 4 - nm < 1:
        raise NotSegmentationModelError(f"{name}: detection output {det_shape} does not hold 4 box values, "
                                        f"class scores and {nm} mask coefficients")
    return False, rows - 4 - nm, nm


def _input_size(name: str, fixed_hw: tuple | None, wanted: tuple[int, int] | None, stride: int) -> tuple[int, int]:
    """The (h, w) the network runs at: a fixed input's own, else `wanted` or 640, rounded up to the stride."""
    if fixed_hw is not None:
        if wanted is not None and wanted != fixed_hw:
            raise ConfigError(f"{name} takes a fixed {fixed_hw[0]}x{fixed_hw[1]} input; imgsz {wanted} is not "
                              "possible (export with dynamic=True for other sizes)")
        return (int(fixed_hw[0]), int(fixed_hw[1]))
    # Ultralytics runs a dynamic-shape model at its default 640 unless told otherwise (not at the export size in
    # the metadata); doing the same keeps the two runtimes' results identical.
    imgsz = wanted or (640, 640)
    log.info("%s takes any input size; running at %dx%d", name, *imgsz)
    rounded = (math.ceil(imgsz[0] / stride) * stride, math.ceil(imgsz[1] / stride) * stride)
    if rounded != tuple(imgsz):
        log.warning("imgsz %s is not a multiple of stride %d, using %s", imgsz, stride, rounded)
    return rounded

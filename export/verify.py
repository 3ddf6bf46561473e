"""Is the exported model still the original? The same images through both, compared twice:

1. raw outputs: the exported model (ONNX Runtime) and the PyTorch checkpoint on the same input
   tensor, largest difference relative to the outputs' range (where both have the same outputs:
   a model with NMS in its graph has not);
2. final detections: edgeseg's results from the exported model against Ultralytics' predictions from
   the checkpoint (retina masks), matched by class and box IoU: how many agree, how well their boxes
   and masks overlap.

The tolerances depend on the precision of the export, and are written down in TOLERANCES.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeseg.errors import ExportError, SourceError

log = logging.getLogger(__name__)

MATCH_IOU = 0.5  # a detection of one model matches one of the other when same class and box IoU >= this


@dataclass(frozen=True)
class Tolerances:
    """The largest raw-output difference (relative to the largest output magnitude), and the least share of
    detections matched both ways, mean box IoU and mean mask IoU of the matched ones."""

    max_output_diff: float
    min_matched: float
    min_box_iou: float
    min_mask_iou: float


# Measured on the shared shapes model and images (see tests/export/test_export.py), with margin. FP32 differs from
# PyTorch only by the fused Conv+BN and ONNX Runtime's kernels; FP16 weights move scores near the threshold,
# so a few detections appear or vanish; INT8 moves them more: its largest raw difference (0.27 measured, on a
# background anchor's box) says little, the detections' agreement (0.90 matched, mask IoU 0.98) is the real check.
TOLERANCES = {
    "fp32": Tolerances(max_output_diff=1e-4, min_matched=0.98, min_box_iou=0.99, min_mask_iou=0.97),
    "fp16": Tolerances(max_output_diff=3e-2, min_matched=0.90, min_box_iou=0.95, min_mask_iou=0.90),
    "int8": Tolerances(max_output_diff=0.5, min_matched=0.70, min_box_iou=0.85, min_mask_iou=0.80),
}


@dataclass(frozen=True)
class VerifyReport:
    """What verify() measured and whether it is within the tolerances of the precision."""

    model: str
    checkpoint: str
    precision: str
    images: int
    max_output_diff: float | None  # None: the outputs differ in kind (NMS in the graph)
    reference_detections: int
    exported_detections: int
    matched: float  # matched pairs / the larger of the two detection counts (1.0 when both found nothing)
    mean_box_iou: float
    mean_mask_iou: float
    tolerances: Tolerances

    @property
    def failures(self) -> list[str]:
        t = self.tolerances
        checks = [
            (self.max_output_diff is not None and self.max_output_diff > t.max_output_diff,
             f"largest output difference {self.max_output_diff:.3g} > {t.max_output_diff:g}"
             if self.max_output_diff is not None else ""),
            (self.matched < t.min_matched, f"matched detections {self.matched:.3f} < {t.min_matched:g}"),
            (self.mean_box_iou < t.min_box_iou, f"mean box IoU {self.mean_box_iou:.4f} < {t.min_box_iou:g}"),
            (self.mean_mask_iou < t.min_mask_iou, f"mean mask IoU {self.mean_mask_iou:.4f} < {t.min_mask_iou:g}"),
        ]
        return [message for failed, message in checks if failed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def format(self) -> str:
        diff = "n/a (NMS in the graph)" if self.max_output_diff is None else f"{self.max_output_diff:.3g}"
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.failures)
        return (f"verify {self.model} ({self.precision}) against {self.checkpoint} on {self.images} images: "
                f"largest output difference {diff}; detections {self.exported_detections} vs "
                f"{self.reference_detections}, matched {self.matched:.3f}, mean box IoU {self.mean_box_iou:.4f}, "
                f"mean mask IoU {self.mean_mask_iou:.4f} -> {verdict}")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "failures": self.failures}


def default_images() -> list[Path]:
    """The project's shared validation images (EDGESEG_SHARED, or shared/ beside the repository), if present."""
    shared = Path(os.environ.get("EDGESEG_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    return sorted((shared / "data" / "shapes-seg" / "images" / "val").glob("*.jpg"))


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (n, m) of boxes a (n, 4) and b (m, 4), xyxy."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(ref_xyxy, ref_cls, xyxy, cls) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by box IoU within each class: (reference index, index, IoU), best pairs first."""
    if not len(ref_xyxy) or not len(xyxy):
        return []
    iou = _box_iou(np.asarray(ref_xyxy, np.float64), np.asarray(xyxy, np.float64))
    iou[np.asarray(ref_cls)[:, None] != np.asarray(cls)[None, :]] = 0
    pairs = []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < MATCH_IOU:
            break
        if all(i != p and j != q for p, q, _ in pairs):
            pairs.append((int(i), int(j), float(iou[i, j])))
    return pairs


def _raw_outputs_diff(torch_model, segmenter, images: list[np.ndarray]) -> float | None:
    """Largest |onnx - torch| over the raw outputs, relative to the largest torch output magnitude."""
    import torch

    if segmenter.end2end:
        return None
    worst = 0.0
    for image in images:
        tensor, _ = segmenter.preprocess([image])
        batch = np.ascontiguousarray(tensor[:1]).astype(np.float32)
        our_det, our_protos = segmenter.spec.split(segmenter.backend.infer(tensor))
        with torch.inference_mode():
            (det, protos), _ = torch_model(torch.from_numpy(batch))
        for ours, theirs in ((our_det[:1], det), (our_protos[:1], protos)):
            theirs = theirs.float().numpy()
            if ours.shape != theirs.shape:
                return None
            scale = max(float(np.abs(theirs).max()), 1.0)
            worst = max(worst, float(np.abs(ours.astype(np.float32) - theirs).max()) / scale)
    return worst


def verify(exported: str | Path, checkpoint: str | Path, images: Iterable[str | Path | np.ndarray] | None = None,
           precision: str = "fp32", conf: float = 0.25, iou: float = 0.7, max_images: int = 50) -> VerifyReport:
    """Runs `exported` (ONNX, with edgeseg) and `checkpoint` (PyTorch, with Ultralytics) on the same images
    and compares raw outputs and final detections (see the module docstring). `images`: files, folders,
    arrays (default: the shared validation images); at most `max_images` are used."""
    import cv2
    from ultralytics import YOLO

    from edgeseg import Segmenter
    from edgeseg.inputs.frames import ImageSource
    from edgeseg.inputs.images import expand_source

    if precision not in TOLERANCES:
        raise ExportError(f"precision must be one of {', '.join(TOLERANCES)}, got {precision!r}")
    items = expand_source(list(images) if images is not None else (default_images() or _no_images()))[:max_images]
    frames = [frame.image for frame in ImageSource(items, strict=True)]
    with Segmenter(exported, conf=conf, iou=iou) as seg:
        yolo = YOLO(str(checkpoint))
        torch_model = yolo.model.float().eval()
        diff = _raw_outputs_diff(torch_model, seg, frames)
        ref_n = our_n = 0
        matched, box_ious, mask_ious = 0, [], []
        for frame in frames:
            ours = seg.predict(frame)[0]
            ref = yolo.predict(frame, imgsz=list(seg.imgsz), conf=conf, iou=iou, retina_masks=True, verbose=False)[0]
            ref_xyxy, ref_cls = ref.boxes.xyxy.numpy(), ref.boxes.cls.numpy().astype(np.int64)
            ref_masks = ref.masks.data.numpy().astype(bool) if ref.masks is not None else None
            pairs = match(ref_xyxy, ref_cls, ours.boxes.xyxy, ours.boxes.cls)
            ref_n, our_n, matched = ref_n + len(ref_xyxy), our_n + len(ours), matched + len(pairs)
            for i, j, box_iou in pairs:
                box_ious.append(box_iou)
                theirs = ref_masks[i] if ref_masks is not None else np.zeros(frame.shape[:2], bool)
                if theirs.shape != frame.shape[:2]:  # Ultralytics' masks at the network size: not expected
                    theirs = cv2.resize(theirs.astype(np.uint8), frame.shape[1::-1],
                                        interpolation=cv2.INTER_NEAREST) > 0
                mine = ours.masks.dense(j).astype(bool)
                union = np.logical_or(theirs, mine).sum()
                mask_ious.append(float(np.logical_and(theirs, mine).sum() / union) if union else 1.0)
    return VerifyReport(
        model=Path(exported).name, checkpoint=Path(checkpoint).name, precision=precision, images=len(frames),
        max_output_diff=diff, reference_detections=ref_n, exported_detections=our_n,
        matched=matched / max(ref_n, our_n) if max(ref_n, our_n) else 1.0,
        mean_box_iou=float(np.mean(box_ious)) if box_ious else 1.0,
        mean_mask_iou=float(np.mean(mask_ious)) if mask_ious else 1.0,
        tolerances=TOLERANCES[precision],
    )


def _no_images() -> list:
    raise SourceError("no images to verify on: pass --verify-images DIR (the shared validation images are not here)")

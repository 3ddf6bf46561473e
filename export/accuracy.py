"""COCO-style box and mask mAP of an ONNX model on a dataset in Ultralytics' YOLO-seg layout, with pycocotools.

The same code scores every variant of a model (FP32, FP16, INT8): edgeseg's Segmenter predicts, pycocotools'
COCOeval matches and averages, so differences between variants come from the networks alone.

    scores = mask_map("model.onnx", "datasets/shapes-seg")          # images/val/*.jpg + labels/val/*.txt
    scores["mask_map50_95"], scores["box_map50"]

Ground truth: each label line is `class x1 y1 x2 y2 ...`, one polygon normalised to [0, 1]. Its vertices are
scaled to the image and rounded to the nearest pixel, then filled as cv2.fillPoly fills them (edgeseg's
fill_polygons): a polygon traced with cv2.findContours through boundary pixel centres, as YOLO-seg labels usually
are, gives back its region pixel for pixel, outline included. The box is the polygon's vertex extent, as
Ultralytics derives it for training.

Scoring follows COCO: per image and class, detections are matched greedily by score at each IoU threshold, at most
100 per image and class; AP is the 101-point interpolated precision, averaged over the classes that have ground
truth. This is not Ultralytics' `val`, which scores masks at a quarter of the network's input resolution (80x80 for
320x320) on all 300 detections, keeps a box once per class above conf (multi-label NMS; mask_map keeps one label per
box) and builds one precision-recall curve per class its own way: on the shared test model at 320x320 it reports
mask mAP50-95 0.390 and box 0.399 where this module gives 0.402 and 0.403. `edgeseg val` (edgeseg.app.val) scores
with this module after predicting as Ultralytics' val does, multi-label.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg import Segmenter
from edgeseg.errors import ConfigError, ExportError, SourceError
from edgeseg.inputs.images import IMAGE_SUFFIXES, read_image
from edgeseg.kernels.raster import fill_polygons
from edgeseg.outputs.coco import encode_rle

# COCOeval.stats positions (pycocotools' summarize order): AP at IoU .50:.95 and at .50, all areas, 100 detections
_AP50_95, _AP50 = 0, 1
_SCORES = ("mask_map50_95", "mask_map50", "box_map50_95", "box_map50")


def mask_map(
    model: str | Path,
    dataset_dir: str | Path,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    imgsz: int | tuple[int, int] | None = None,
    max_images: int | None = None,
    split: str = "val",
) -> dict[str, Any]:
    """Box and mask mAP50-95 and mAP50 of an ONNX segmentation model on dataset_dir/images/{split}.

    Returns {"mask_map50_95", "mask_map50", "box_map50_95", "box_map50": float in [0, 1], "images": int,
    "instances": int}. conf 0.001 and iou 0.7 are Ultralytics' validation settings; max_images takes the first
    images in name order.
    """
    images, ground_truth = load_ground_truth(dataset_dir, split, max_images)
    detections: list[dict] = []
    with Segmenter(model, conf=conf, iou=iou, imgsz=imgsz) as seg:
        for image_id, result in enumerate(seg.stream([str(p) for p in images]), 1):
            detections.extend(result.to_coco(image_id=image_id))
    return evaluate(ground_truth, detections)


def load_ground_truth(
    dataset_dir: str | Path, split: str = "val", max_images: int | None = None
) -> tuple[list[Path], dict]:
    """The images of dataset_dir/images/{split} (sorted) and their labels as a COCO dataset dict.

    Image ids are 1, 2, ... in the order of the returned list; annotation ids start at 1 (COCOeval reads id 0 as
    "unmatched"); category ids are the YOLO class indices. An image without a label file has no objects, as in
    Ultralytics. Each annotation holds a compressed-RLE segmentation, an [x, y, w, h] bbox and its pixel area.
    """
    root = Path(dataset_dir)
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    if not image_dir.is_dir():
        raise SourceError(f"{root} is not a YOLO-seg dataset: {image_dir} is not a folder "
                          f"(expected images/{split}/*.jpg and labels/{split}/*.txt)")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ConfigError(f"max_images must be a positive integer or None, got {max_images!r}")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:max_images]
    if not images:
        raise SourceError(f"no images in {image_dir}")

    coco_images, annotations = [], []
    for image_id, path in enumerate(images, 1):
        # only the size is needed, but YOLO labels carry none: decoding is the reliable way (and cheap at these sizes)
        h, w = read_image(str(path)).shape[:2]
        coco_images.append({"id": image_id, "file_name": path.name, "height": h, "width": w})
        label = label_dir / f"{path.stem}.txt"
        if label.is_file():
            annotations.extend(label_annotations(read_labels(label), image_id, (h, w), len(annotations) + 1))
    categories = [{"id": c, "name": str(c)} for c in sorted({a["category_id"] for a in annotations})]
    return images, {"images": coco_images, "annotations": annotations, "categories": categories}


def read_labels(path: str | Path) -> list[tuple[int, np.ndarray]]:
    """The objects of one YOLO-seg label file: (class, (K, 2) float64 polygon normalised to [0, 1]) per line; blank
    lines are skipped. SourceError naming the file (and line) for an unreadable file or a malformed line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not a text file (a YOLO-seg label holds `class x1 y1 x2 y2 ...` lines)") from None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    return [_parse_label_line(line, f"{path}:{n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def label_annotations(objects: list[tuple[int, np.ndarray]], image_id: int, shape: tuple[int, int],
                      first_id: int = 1) -> list[dict]:
    """COCO annotations of one image's labelled objects (read_labels) on an image of `shape` (h, w), with ids
    first_id, first_id + 1, ...: a compressed-RLE segmentation, an [x, y, w, h] bbox and the pixel area each."""
    h, w = shape
    annotations = []
    for k, (cls, polygon) in enumerate(objects):
        vertices = np.round(polygon * (w, h)).astype(np.int32)
        x0, y0 = np.clip(vertices.min(0), 0, (w - 1, h - 1))
        x1, y1 = np.clip(vertices.max(0), 0, (w - 1, h - 1))
        crop = fill_polygons(vertices, (int(y1 - y0) + 1, int(x1 - x0) + 1), offset=(int(x0), int(y0)),
                             frame_shape=(h, w))
        annotations.append({
            "id": first_id + k, "image_id": image_id, "category_id": cls, "iscrowd": 0,
            "segmentation": encode_rle(crop, (x0, y0), (h, w)), "area": float(np.count_nonzero(crop)),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        })
    return annotations


def evaluate(ground_truth: dict, detections: list[dict], per_class: bool = False) -> dict[str, Any]:
    """COCOeval of `detections` (COCO results: image_id, category_id, bbox, score, RLE segmentation) against a
    COCO dataset dict; returns the dict that mask_map returns. Classes without ground truth do not count (COCO's
    rule). per_class=True adds "classes": {category id: the four scores} for each class with ground truth; the
    overall scores are their means."""
    COCO, COCOeval = _pycocotools()
    scores: dict[str, Any] = {"images": len(ground_truth["images"]), "instances": len(ground_truth["annotations"])}
    if not ground_truth["annotations"]:
        raise SourceError("the ground truth has no objects: there is nothing to score (are the labels/ files there?)")
    if not detections:  # loadRes cannot take an empty list; no detections is an AP of 0, not an error
        scores.update(dict.fromkeys(_SCORES, 0.0))
        if per_class:
            labelled = sorted({a["category_id"] for a in ground_truth["annotations"]})
            scores["classes"] = {c: dict.fromkeys(_SCORES, 0.0) for c in labelled}
        return scores
    classes: dict[int, dict[str, float]] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        for kind, prefix in (("segm", "mask"), ("bbox", "box")):
            # each kind gets only its own geometry: given a bbox, loadRes sets a mask detection's area to its box's
            drop = "bbox" if kind == "segm" else "segmentation"
            results = [{k: v for k, v in d.items() if k != drop} for d in detections]
            ev = COCOeval(gt, gt.loadRes(results), kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            scores[f"{prefix}_map50_95"] = float(ev.stats[_AP50_95])
            scores[f"{prefix}_map50"] = float(ev.stats[_AP50])
            # what summarize averages, class by class: precision (IoU thresholds from 0.5, 101 recall points,
            # classes, area ranges, max detections) at all areas and the most detections; -1 where a class has no
            # ground truth
            precision = ev.eval["precision"][:, :, :, 0, -1]
            for k, cat in enumerate(ev.params.catIds):
                p = precision[:, :, k]
                if (p > -1).any():
                    row = classes.setdefault(int(cat), {})
                    row[f"{prefix}_map50_95"] = float(p[p > -1].mean())
                    row[f"{prefix}_map50"] = float(p[0][p[0] > -1].mean())
    if per_class:
        scores["classes"] = {c: {k: classes[c][k] for k in _SCORES} for c in sorted(classes)}
    return scores


def _parse_label_line(line: str, where: str) -> tuple[int, np.ndarray]:
    """`class x1 y1 x2 y2 ...` -> (class, (K, 2) float64 normalised vertices)."""
    fields = line.split()
    try:
        cls, values = int(fields[0]), np.array(fields[1:], np.float64)
    except ValueError:
        raise SourceError(f"{where}: not a YOLO-seg label line (class index, then x y pairs): {line[:60]!r}") from None
    if cls < 0:
        raise SourceError(f"{where}: class index {cls} is negative")
    if len(values) < 6 or len(values) % 2:
        raise SourceError(f"{where}: a polygon needs at least 3 x y pairs, got {len(values)} numbers "
                          "(box-only detection labels cannot score masks)")
    # Ultralytics refuses such a label too; scaled by the image size it would point outside the image (NaN anywhere)
    outside = values[~((values >= 0) & (values <= 1))]
    if len(outside):
        raise SourceError(f"{where}: coordinates must be normalised to [0, 1], got {outside[0]:g}")
    return cls, values.reshape(-1, 2)


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ExportError("accuracy needs pycocotools, which only the dev extra installs: "
                          'pip install pycocotools (or pip install -e ".[dev]")') from None
    return COCO, COCOeval

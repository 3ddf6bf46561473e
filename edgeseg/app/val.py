"""`edgeseg val`: box and mask mAP50 and mAP50-95 of a model, overall and per class, on a labelled dataset.

    report = validate("yolo11n-seg.onnx", "datasets/shapes/data.yaml")
    print(report.format())                          # a table like Ultralytics' val printout
    report.mask_map50_95, report.classes[0].box_map50

The dataset is Ultralytics' segmentation layout: a data.yaml with `path:` (optional; default: the yaml's folder),
`val:` (a folder of images, searched recursively, or a .txt list of image files; a list of these) and `names:`; each
image's labels are in the parallel labels/ folder (the last `images` in its path replaced by `labels`, suffix .txt),
one `class x1 y1 x2 y2 ...` polygon per line, normalised to [0, 1]. An image without a label file has no objects.

The model runs as Ultralytics' val runs it: conf 0.001, iou 0.7, up to 300 detections, and multi-label NMS (a box
is kept once for each class scoring above conf, which lifts the AP of classes the model confuses). The scoring is
edgeseg_export.accuracy's, the same that scores FP32 against INT8 exports: the label polygons are filled at full
image resolution, and pycocotools' COCOeval matches detections greedily by score per image and class (at most 100
per image and class) and averages 101-point interpolated precision over the classes that have objects. Ultralytics'
val instead scores masks at a quarter of the network's input size, matches by IoU and takes boxes from the unrounded
polygons: on the shared test set the two agree within 0.01 on mAP50 and 0.015 on mAP50-95 (tests/app/test_val.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import parse_imgsz, read_yaml
from ..errors import ConfigError, SourceError
from ..inputs.images import IMAGE_SUFFIXES
from ..outputs.files import check_not_inputs, write_json
from ..segmenter import Segmenter
from .progress import Progress

log = logging.getLogger(__name__)

STAGES = ("preprocess", "inference", "postprocess", "scoring")
INSTALL_HINT = 'pip install "edgeseg[val]"'
# how Ultralytics' val runs the model: every box down to conf 0.001 counts towards the precision-recall curve
VAL_SETTINGS = {"conf": 0.001, "iou": 0.7, "max_det": 300, "multi_label": True}


@dataclass(frozen=True)
class ValData:
    """A validation set as its data.yaml describes it: class names, the images in order, and the label file each
    image has or would have (a missing one: no objects)."""

    yaml: Path
    names: dict[int, str]
    images: tuple[Path, ...]
    labels: tuple[Path, ...]


@dataclass(frozen=True)
class ClassScores:
    """One class's row: images that show it, its objects, and its box and mask AP at IoU 0.5 and 0.5:0.95."""

    cls: int
    name: str
    images: int
    instances: int
    box_map50: float
    box_map50_95: float
    mask_map50: float
    mask_map50_95: float


@dataclass(frozen=True)
class ValReport:
    """What validate measured: overall and per-class (classes with objects only) mAP, the size of the set, ms per
    image by stage (the model's three stages, then scoring), and the settings and files it was measured with."""

    model: str
    data: str
    images: int
    instances: int
    box_map50: float
    box_map50_95: float
    mask_map50: float
    mask_map50_95: float
    classes: tuple[ClassScores, ...]
    speed: dict[str, float]
    imgsz: tuple[int, int]
    conf: float
    iou: float
    max_det: int
    evaluator: str
    runs_on: str = ""  # the backend and device the network ran on, as Segmenter.providers names them

    def format(self) -> str:
        """The table Ultralytics' val prints, with mAP columns only (COCOeval gives no single precision and recall
        point), then the speed and what was scored how."""
        head = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "Box(mAP50", "mAP50-95)", "Mask(mAP50",
                                        "mAP50-95)")
        row = "%22s" + "%11i" * 2 + "%11.3f" * 4
        lines = [head, row % ("all", self.images, self.instances, self.box_map50, self.box_map50_95, self.mask_map50,
                              self.mask_map50_95)]
        lines += [row % (c.name, c.images, c.instances, c.box_map50, c.box_map50_95, c.mask_map50, c.mask_map50_95)
                  for c in self.classes]
        lines.append("Speed: " + ", ".join(f"{self.speed[s]:.1f}ms {s}" for s in STAGES) + " per image")
        on = f" on {self.runs_on}" if self.runs_on else ""
        lines.append(f"{self.model}{on} at {self.imgsz[0]}x{self.imgsz[1]}, conf {self.conf:g}, iou {self.iou:g}, "
                     f"max_det {self.max_det}, multi-label NMS, on {self.data}")
        lines.append(f"scored by {self.evaluator}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON types: classes a list of dicts, imgsz [h, w]."""
        data = dataclasses.asdict(self)
        data["classes"] = [dataclasses.asdict(c) for c in self.classes]
        data["imgsz"] = list(self.imgsz)
        return data


def validate(
    model_or_segmenter: str | Path | Segmenter,
    data: str | Path,
    *,
    imgsz: int | tuple[int, int] | None = None,
    conf: float = VAL_SETTINGS["conf"],
    iou: float = VAL_SETTINGS["iou"],
    batch: int = 1,
    max_det: int = VAL_SETTINGS["max_det"],
    progress: bool = True,
    save_json: str | Path | None = None,
) -> ValReport:
    """Box and mask mAP of a model on the `val:` images of a data.yaml; see the module docstring.

    model_or_segmenter: a model file, opened with imgsz, conf, iou, batch, max_det (Ultralytics' val settings by
    default) and multi_label=True; or a Segmenter, which keeps its own settings: those must then be conf, iou, max_det,
    imgsz (when given) and multi_label=True, so that a Segmenter made for deployment (conf 0.25, one label per box)
    is never scored as if it were made for validation.
    save_json: also write report.to_json() there, atomically.
    Raises ConfigError (pycocotools missing; a bad data.yaml; settings that disagree with the Segmenter's or a
    model whose class count is not the dataset's), SourceError (images or labels missing, unreadable or malformed:
    every label file is read before the model runs), OutputError (save_json unwritable or one of the inputs).
    """
    dataset, objects = read_dataset(data)
    from edgeseg_export.accuracy import evaluate, label_annotations

    model_file = model_or_segmenter.model_path if isinstance(model_or_segmenter, Segmenter) else model_or_segmenter
    if save_json is not None:
        check_not_inputs({"save_json": Path(save_json)},
                         [dataset.yaml, model_file, *dataset.images, *(p for p in dataset.labels if p.is_file())])

    image_records: list[dict] = []
    annotations: list[dict] = []
    detections: list[dict] = []
    totals = dict.fromkeys(STAGES, 0.0)  # ms over all images
    with _open(model_or_segmenter, imgsz, conf, iou, batch, max_det) as seg:
        check_names(seg, dataset)
        with Progress(len(dataset.images), "val", enabled=progress and len(dataset.images) > 1) as bar:
            for k, result in enumerate(seg.stream([str(p) for p in dataset.images])):
                t0 = time.perf_counter()
                h, w = result.orig_shape
                image_records.append({"id": k + 1, "file_name": str(dataset.images[k]), "height": h, "width": w})
                annotations.extend(label_annotations(objects[k], k + 1, (h, w), len(annotations) + 1))
                detections.extend(result.to_coco(image_id=k + 1))
                totals["scoring"] += (time.perf_counter() - t0) * 1e3
                for stage in STAGES[:3]:
                    totals[stage] += result.speed.get(stage, 0.0)
                bar.update()
        settings = seg.config
        model_path, input_size, runs_on = str(seg.model_path), seg.imgsz, ", ".join(seg.providers)

    t0 = time.perf_counter()
    categories = [{"id": c, "name": name} for c, name in dataset.names.items()]
    ground_truth = {"images": image_records, "annotations": annotations, "categories": categories}
    scores = evaluate(ground_truth, detections, per_class=True)
    totals["scoring"] += (time.perf_counter() - t0) * 1e3

    report = ValReport(
        model=model_path, data=str(dataset.yaml), images=len(image_records), instances=len(annotations),
        box_map50=scores["box_map50"], box_map50_95=scores["box_map50_95"], mask_map50=scores["mask_map50"],
        mask_map50_95=scores["mask_map50_95"], classes=_class_rows(dataset, objects, scores["classes"]),
        speed={s: totals[s] / max(len(image_records), 1) for s in STAGES}, imgsz=tuple(input_size),
        conf=settings.conf, iou=settings.iou, max_det=settings.max_det, evaluator=_evaluator(),
        runs_on=runs_on)
    if save_json is not None:
        write_json(save_json, report.to_json())
    return report


def read_dataset(data: str | Path) -> tuple[ValData, list[list[tuple[int, np.ndarray]]]]:
    """What validate reads before any model loads: the data.yaml, its images' list and every label file (each
    image's (class, polygon) objects), checked; pycocotools must be there to score them. Raises as validate does."""
    _require_pycocotools()
    # edgeseg_export ships with edgeseg; imported here so that importing edgeseg never loads the export package
    from edgeseg_export.accuracy import read_labels

    dataset = load_data(data)
    objects = [read_labels(label) if label.is_file() else [] for label in dataset.labels]
    _check_classes(dataset, objects)
    return dataset, objects


def load_data(path: str | Path) -> ValData:
    """Reads a data.yaml (see the module docstring) and lists its validation images and their label files.

    A relative `path:` is taken from the yaml's folder (Ultralytics takes it from the working directory, then its
    datasets folder; the working directory is still tried when the yaml's folder has no such folder), `val:` entries
    from `path:`, and lines of a .txt list from the list's folder. ConfigError for a missing, unreadable or malformed
    file or entry; SourceError when the folders or images it names are not there.
    """
    yaml_path = Path(path)
    spec = read_yaml(yaml_path, "dataset")
    names = _names(spec, yaml_path)
    root = _root(spec, yaml_path)
    val = spec.get("val")
    entries = val if isinstance(val, list) else [val]
    if val is None or not entries or not all(isinstance(e, str) and e.strip() for e in entries):
        raise ConfigError(f"dataset file {yaml_path} needs 'val:' naming the validation images (a folder or a .txt "
                          f"list, relative to path:), got {val!r}")
    images: list[Path] = []
    for entry in entries:
        target = Path(entry).expanduser()
        images.extend(_list_images(target if target.is_absolute() else root / target, yaml_path))
    return ValData(yaml_path, names, tuple(images), tuple(label_path(p) for p in images))


def label_path(image: Path) -> Path:
    """The label file of an image, as Ultralytics finds it: the last `images` folder of its path replaced by
    `labels`, and the suffix by .txt (beside the image when its path has no `images` folder)."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = str(image.absolute())
    if images in text:
        text = labels.join(text.rsplit(images, 1))
    return Path(text).with_suffix(".txt")


def _require_pycocotools() -> None:
    """Before anything runs: the scoring needs pycocotools, an optional dependency."""
    try:
        for module in ("pycocotools.coco", "pycocotools.cocoeval"):
            importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"edgeseg val scores with pycocotools, which is not installed: {INSTALL_HINT}") from None


def _evaluator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        name = f"pycocotools {version('pycocotools')}"
    except PackageNotFoundError:  # importable but not installed as a distribution (a source checkout)
        name = "pycocotools"
    return f"{name} COCOeval (101-point AP, at most 100 detections per image and class, masks at full resolution)"


def _names(spec: dict, yaml_path: Path) -> dict[int, str]:
    """`names:` as a list or a {0: name, ...} mapping (or `nc:` alone: class0, class1, ...) -> {index: name}."""
    names, nc = spec.get("names"), spec.get("nc")
    if names is None and isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
        names = [f"class{i}" for i in range(nc)]
    if isinstance(names, list) and names:
        names = dict(enumerate(names))
    if (not isinstance(names, dict) or not names
            or sorted(k if isinstance(k, int) and not isinstance(k, bool) else -1 for k in names)
            != list(range(len(names)))):
        raise ConfigError(f"dataset file {yaml_path} needs 'names:', a list of class names or a mapping "
                          f"0: name, 1: name, ... with every index from 0, got {names!r}")
    if nc is not None and nc != len(names):
        raise ConfigError(f"dataset file {yaml_path} has nc: {nc!r} but names {len(names)} classes")
    return {int(k): str(v) for k, v in names.items()}


def _root(spec: dict, yaml_path: Path) -> Path:
    """The folder `val:` entries are relative to: `path:`, else the yaml's folder."""
    base = yaml_path.parent
    given = spec.get("path")
    if given is None:
        return base
    if not isinstance(given, str) or not given.strip():
        raise ConfigError(f"dataset file {yaml_path}: 'path:' must be a folder, got {given!r}")
    root = Path(given).expanduser()
    if not root.is_absolute():
        # a dataset's own yaml points from where it lies; Ultralytics' users may mean the working directory
        root = base / root if (base / root).is_dir() or not root.is_dir() else root
    if not root.is_dir():
        raise SourceError(f"dataset file {yaml_path}: path: {given} is not a folder (a relative path is taken from "
                          "the yaml's folder)")
    return root


def _list_images(target: Path, yaml_path: Path) -> list[Path]:
    """The images a `val:` entry names: a folder's, searched recursively, in name order; or a .txt list's."""
    if target.is_dir():
        images = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise SourceError(f"no images in {target} (val: of {yaml_path}; looked for "
                              f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if target.is_file() and target.suffix.lower() == ".txt":
        try:
            lines = target.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read the image list {target}: {getattr(e, 'strerror', None) or e}") from None
        images = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            image = Path(line.strip()).expanduser()
            image = image if image.is_absolute() else target.parent / image
            if not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES:
                raise SourceError(f"{target}:{n}: {line.strip()} is not an image file")
            images.append(image)
        if not images:
            raise SourceError(f"the image list {target} is empty (val: of {yaml_path})")
        return images
    if target.exists():
        raise SourceError(f"val: {target} of {yaml_path} is neither a folder of images nor a .txt list of them")
    raise SourceError(f"val: {target} of {yaml_path} not found")


def _check_classes(dataset: ValData, objects: list[list[tuple[int, np.ndarray]]]) -> None:
    """Every label's class is one data.yaml names, and there is at least one object to score."""
    n = len(dataset.names)
    for label, found in zip(dataset.labels, objects, strict=True):
        wrong = [cls for cls, _ in found if cls >= n]
        if wrong:
            raise SourceError(f"{label}: class {wrong[0]}, but {dataset.yaml} names {n} classes (0-{n - 1})")
    if not any(objects):
        raise SourceError(f"no labelled objects for the {len(dataset.images)} images of {dataset.yaml}, so nothing to "
                          f"score: are the label files there? (the first would be {dataset.labels[0]})")


def _open(model: str | Path | Segmenter, imgsz: Any, conf: float, iou: float, batch: int,
          max_det: int) -> AbstractContextManager[Segmenter]:
    """A Segmenter for the run: opened here from a file (and closed at the end), or the caller's own, checked."""
    if not isinstance(model, Segmenter):
        return Segmenter(model, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, batch=batch, multi_label=True)
    asked = {"conf": conf, "iou": iou, "max_det": max_det, "multi_label": True}
    have = {name: getattr(model.config, name) for name in asked}
    if imgsz is not None:
        asked["imgsz"], have["imgsz"] = parse_imgsz(imgsz), tuple(model.imgsz)
    differ = [name for name in asked if asked[name] != have[name]]
    if differ:
        what = ", ".join(f"{name} {have[name]!r} (asked: {asked[name]!r})" for name in differ)
        raise ConfigError(f"the Segmenter was made with {what}: make it with the settings to score, or give "
                          "validate the model file")
    return nullcontext(model)


def check_names(seg: Segmenter, dataset: ValData) -> None:
    """The model predicts the dataset's classes: the same count (class indices are compared, not names)."""
    if len(seg.names) != len(dataset.names):
        raise ConfigError(f"{seg.model_path.name} has {len(seg.names)} classes but {dataset.yaml} names "
                          f"{len(dataset.names)}: validate a model on the dataset it was trained for")
    differ = [c for c in dataset.names if seg.names.get(c) != dataset.names[c]]
    if differ:
        log.warning("%s and %s name class %d differently (%r, %r); rows are named as the dataset names them",
                    seg.model_path.name, dataset.yaml, differ[0], seg.names.get(differ[0]), dataset.names[differ[0]])


def _class_rows(dataset: ValData, objects: list[list[tuple[int, np.ndarray]]],
                per_class: dict[int, dict[str, float]]) -> tuple[ClassScores, ...]:
    """One row per class with objects, in class order."""
    rows = []
    for cls, scores in sorted(per_class.items()):
        per_image = [sum(c == cls for c, _ in found) for found in objects]
        rows.append(ClassScores(cls, dataset.names[cls], sum(n > 0 for n in per_image), sum(per_image),
                                scores["box_map50"], scores["box_map50_95"], scores["mask_map50"],
                                scores["mask_map50_95"]))
    return tuple(rows)

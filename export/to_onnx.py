"""YOLO-seg checkpoints to ONNX through Ultralytics' own exporter, with its metadata kept.

Ultralytics writes the exported file beside the checkpoint and prints as it goes; this module
exports from a private copy in a temporary folder and moves the result into place atomically,
so a failed export leaves nothing behind and a read-only checkpoint folder is no obstacle.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ExportError, ModelNotFoundError, NotSegmentationModelError, OutputError

log = logging.getLogger(__name__)

# Checkpoint names Ultralytics knows how to download: "yolo11n-seg.pt", "yolo26x-seg.pt", ...
_HUB_PREFIXES = ("yolo", "yoloe", "rtdetr", "sam", "fastsam")


@dataclass(frozen=True)
class OnnxOptions:
    """What to export: input size (h, w), batch (fixed, or the largest with dynamic), dynamic shapes, FP16
    weights (inputs and outputs stay float32), onnxslim simplification, opset (None: Ultralytics' choice),
    and NMS in the graph."""

    imgsz: tuple[int, int] = (640, 640)
    batch: int = 1
    dynamic: bool = False
    half: bool = False
    simplify: bool = True
    opset: int | None = None
    nms: bool = False

    def __post_init__(self) -> None:
        if len(self.imgsz) != 2 or not all(isinstance(v, int) and v > 0 for v in self.imgsz):
            raise ConfigError(f"imgsz must be two positive integers (h, w), got {self.imgsz!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {self.batch!r}")
        if self.opset is not None and not (isinstance(self.opset, int) and 11 <= self.opset <= 25):
            raise ConfigError(f"opset must be an integer from 11 to 25, got {self.opset!r}")


def round_to_stride(imgsz: tuple[int, int], stride: int) -> tuple[int, int]:
    """(h, w) rounded up to multiples of the stride, with a warning when that changes them (as Ultralytics)."""
    rounded = tuple(math.ceil(v / stride) * stride for v in imgsz)
    if rounded != tuple(imgsz):
        log.warning("imgsz %s is not a multiple of the stride %d: exporting at %s", tuple(imgsz), stride, rounded)
    return rounded  # type: ignore[return-value]


def is_hub_name(model: str | Path) -> bool:
    """True for a bare checkpoint name Ultralytics downloads by itself (no folder, e.g. yolo11n-seg.pt)."""
    path = Path(model)
    return path.parent == Path(".") and path.suffix == ".pt" and path.name.lower().startswith(_HUB_PREFIXES)


def check_checkpoint(model: str | Path) -> Path:
    """The checkpoint's path, once its kind and presence are checked (without loading it)."""
    path = Path(model)
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise ExportError(f"{path.name}: expected a PyTorch checkpoint (.pt) or a model YAML; "
                          "the runtime takes .onnx files directly")
    if not path.exists() and not (is_hub_name(path) or path.suffix != ".pt"):
        raise ModelNotFoundError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(model: str | Path, shown_as: str | Path | None = None) -> Any:
    """An Ultralytics YOLO object for a segmentation checkpoint (.pt) or, for shape tests, a model YAML
    (random weights). Missing, corrupt and non-segmentation checkpoints are clear errors, which name the
    file as `shown_as` (the user's path when `model` is a private copy)."""
    from ultralytics import YOLO

    path = check_checkpoint(model)
    shown = Path(shown_as) if shown_as is not None else path
    try:
        yolo = YOLO(str(path))
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not path.exists() and is_hub_name(path):
            raise ExportError(f"{path.name} is not here and could not be downloaded ({detail}); "
                              "download it where there is a network, or pass a local .pt file") from e
        raise ExportError(f"cannot load {shown} as an Ultralytics checkpoint (truncated, corrupt or not YOLO): "
                          f"{detail}") from e
    if yolo.task != "segment":
        raise NotSegmentationModelError(f"{shown.name} is a YOLO '{yolo.task}' model, not a segmentation model; "
                                        "export a '-seg' checkpoint (e.g. yolo11n-seg.pt)")
    return yolo


def check_writable(out: Path) -> None:
    """Fails early, before minutes of exporting, when `out` cannot be written; creates no folder."""
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a folder")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    try:  # a real file, removed at once: permission bits alone do not tell (root, read-only mounts, /proc)
        with tempfile.NamedTemporaryFile(prefix=f".{out.name}.", suffix=".probe", dir=folder):
            pass
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None


def place(produced: Path, out: Path) -> Path:
    """Moves a finished file to `out`: copied beside it under a temporary name, then renamed over it."""
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        shutil.copyfile(produced, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
        raise
    return out


def default_output(model: str | Path, options: OnnxOptions, suffix: str = ".onnx") -> Path:
    """yolo11n-seg.pt -> yolo11n-seg.onnx beside it; FP16, dynamic and NMS exports say so in the name."""
    path = Path(model)
    tags = [t for t, on in (("fp16", options.half), ("dynamic", options.dynamic), ("nms", options.nms)) if on]
    return path.with_name(path.stem + "".join(f"-{t}" for t in tags) + suffix)


def export_onnx(model: str | Path, out: str | Path | None = None, options: OnnxOptions = OnnxOptions()) -> Path:
    """Exports a YOLO-seg checkpoint to ONNX at `out` (default: beside the checkpoint); returns the path.

    The file holds Ultralytics' metadata (names, imgsz, stride, task, batch, end2end, args), which is
    all the runtime needs.
    """
    out = Path(out) if out is not None else default_output(model, options)
    if out.suffix != ".onnx":
        raise ConfigError(f"the ONNX output must end in .onnx, got {out}")
    source = check_checkpoint(model)
    check_writable(out)
    with tempfile.TemporaryDirectory(prefix="edgeseg-export-") as work:
        # Ultralytics writes beside the checkpoint it loaded: give it a private copy to load
        yolo = load_checkpoint(shutil.copy(source, Path(work) / source.name) if source.exists() else source, source)
        stride = int(max(getattr(yolo.model, "stride", [32])))
        kwargs: dict[str, Any] = dict(format="onnx", imgsz=list(round_to_stride(options.imgsz, stride)),
                                      batch=options.batch, dynamic=options.dynamic, half=options.half,
                                      simplify=options.simplify, nms=options.nms, device="cpu", verbose=False)
        if options.opset is not None:
            kwargs["opset"] = options.opset
        try:
            produced = Path(yolo.export(**kwargs))
        except Exception as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"Ultralytics could not export {source.name} to ONNX: {detail}") from e
        try:
            return place(produced, out)
        finally:
            if Path(work) not in produced.resolve().parents:  # a model built from a YAML exports into the cwd
                produced.unlink(missing_ok=True)

"""One call for the whole export step: checkpoint in; ONNX (FP32, FP16, INT8 QDQ) or TensorRT engine out,
optionally verified against the checkpoint."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.config import parse_imgsz
from edgeseg.errors import ConfigError, ExportError

from .to_onnx import OnnxOptions, check_checkpoint, check_writable, default_output, export_onnx
from .verify import VerifyReport, verify

FORMATS = ("onnx", "engine", "openvino")


@dataclass(frozen=True)
class ExportResult:
    """The file written, and the verification report when one was asked for."""

    path: Path
    report: VerifyReport | None = None


def export(model: str | Path, format: str = "onnx", *, imgsz: int | tuple[int, int] | str = 640, batch: int = 1,
           dynamic: bool = False, half: bool = False, int8: bool = False, calib_dir: str | Path | None = None,
           simplify: bool = True, opset: int | None = None, nms: bool = False, out: str | Path | None = None,
           workspace_gib: float = 4.0, timing_cache: str | Path | None = None, verify_after: bool = False,
           verify_images: Iterable[str | Path] | None = None) -> ExportResult:
    """Exports a YOLO-seg checkpoint (see the README's export section for every option).

    format "onnx": FP32, FP16 weights (`half`) or a statically quantized INT8 QDQ model (`int8`, calibrated
    on the images of `calib_dir`); "engine": a TensorRT engine built from the ONNX export (FP16 / INT8),
    which needs TensorRT and an NVIDIA GPU; "openvino": an OpenVINO IR converted from the ONNX export (FP32, FP16
    weights, or INT8 by NNCF calibrated on `calib_dir`) in Ultralytics' name_openvino_model/ folder (or at an `out`
    ending in .xml). `verify_after` compares the result with the checkpoint.
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if half and int8:
        raise ConfigError("choose one of half (FP16) and int8")
    if verify_after and Path(model).suffix != ".pt":
        raise ConfigError("verify compares against the trained weights of a .pt checkpoint; a model YAML has none")
    if int8 and calib_dir is None:
        raise ConfigError("int8 needs calibration images: pass calib_dir (a folder of typical images)")
    if int8 and calib_dir is not None and not Path(calib_dir).is_dir():
        raise ConfigError(f"calibration folder not found: {calib_dir}")
    if format == "engine" and importlib.util.find_spec("tensorrt") is None:
        raise ExportError("TensorRT is not installed, so no engine can be built here: on a machine with an NVIDIA GPU "
                          "`pip install tensorrt` (JetPack brings it on Jetson); or export --format onnx and run it "
                          "with ONNX Runtime's TensorRT provider (--device tensorrt)")
    if format == "openvino" and importlib.util.find_spec("openvino") is None:
        raise ExportError("OpenVINO is not installed: pip install 'edgeseg[openvino]' to export IRs")
    if format == "openvino" and int8 and importlib.util.find_spec("nncf") is None:
        raise ExportError("INT8 for OpenVINO is quantized by NNCF, which is not installed: pip install nncf")
    size = parse_imgsz(imgsz)
    options = OnnxOptions(imgsz=size, batch=batch, dynamic=dynamic, half=half and format == "onnx",
                          simplify=simplify, opset=opset, nms=nms)
    if format == "openvino":
        return _export_openvino(model, options, half, int8, calib_dir, out, verify_after, verify_images)
    suffix = ".engine" if format == "engine" else ".onnx"
    target = Path(out) if out is not None else default_output(model, options, suffix)
    if int8 and out is None:
        target = target.with_name(target.stem + "-int8" + suffix)
    if format == "engine" and half and out is None:
        target = target.with_name(target.stem + "-fp16" + suffix)
    if target.suffix != suffix:
        raise ConfigError(f"format {format} writes a {suffix} file, got {target}")
    check_checkpoint(model)
    check_writable(target)

    if format == "onnx" and not int8:
        path = export_onnx(model, target, options)
    elif format == "onnx":
        from .quantize import quantize_int8

        with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as work:
            fp32 = export_onnx(model, Path(work) / "fp32.onnx", options)
            path = quantize_int8(fp32, Path(calib_dir), target)  # type: ignore[arg-type]
    else:
        from .tensorrt_engine import build_engine

        onnx_path = export_onnx(model, target.with_suffix(".onnx"), options)  # kept: the engine's source
        h, w = options.imgsz
        shapes = {}
        if dynamic:
            shapes = dict(min_shape=(1, 3, h, w), opt_shape=(max(1, batch // 2), 3, h, w), max_shape=(batch, 3, h, w))
        path = build_engine(onnx_path, target, half=half, int8=int8, calib_dir=Path(calib_dir) if calib_dir else None,
                            workspace_gib=workspace_gib, timing_cache=Path(timing_cache) if timing_cache else None,
                            **shapes)
    report = None
    if verify_after:
        precision = "int8" if int8 else "fp16" if half else "fp32"
        report = verify(path, model, verify_images, precision=precision)
    return ExportResult(path, report)


def _export_openvino(model: str | Path, options: OnnxOptions, half: bool, int8: bool, calib_dir: str | Path | None,
                     out: str | Path | None, verify_after: bool,
                     verify_images: Iterable[str | Path] | None) -> ExportResult:
    """The ONNX export (FP32, in a temporary folder), converted to an IR: Ultralytics' folder, or an .xml `out`."""
    from .to_openvino import default_folder, ir_path, to_openvino

    target = Path(out) if out is not None else default_folder(model, half, int8)
    check_checkpoint(model)
    check_writable(ir_path(target, Path(model).stem))
    onnx_options = OnnxOptions(**{**options.__dict__, "half": False})  # FP16 weights are OpenVINO's compression
    with tempfile.TemporaryDirectory(prefix="edgeseg-openvino-") as work:
        onnx_path = export_onnx(model, Path(work) / f"{Path(model).stem}.onnx", onnx_options)
        path = to_openvino(onnx_path, target, half=half, int8=int8, calib_dir=calib_dir)
    report = None
    if verify_after:
        report = verify(path, model, verify_images, precision="int8" if int8 else "fp16" if half else "fp32")
    return ExportResult(path, report)

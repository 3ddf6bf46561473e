"""YOLO-seg ONNX exports to OpenVINO IRs (FP32, FP16 weights, INT8 by NNCF post-training quantization).

    to_openvino("yolo11n-seg.onnx", "yolo11n-seg_openvino_model")                   # FP32
    to_openvino("yolo11n-seg.onnx", "out_openvino_model", int8=True, calib_dir="calib/")

The IR is converted from the ONNX export by openvino.convert_model, which carries the ONNX file's metadata (names,
imgsz, stride, task, ...) into the IR's rt_info, where edgeseg's OpenVINO backend reads it. The output is the
folder Ultralytics writes (name_openvino_model/ with name.xml, name.bin and metadata.yaml), so that Ultralytics'
YOLO() loads it too; an output ending in .xml writes the IR alone.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError, ExportError, OutputError
from edgeseg.model.backends.openvino_files import FOLDER_SUFFIX, IR_SUFFIX, METADATA_YAML, WEIGHTS_SUFFIX
from edgeseg.model.metadata import ModelMetadata

from .to_onnx import check_writable

log = logging.getLogger(__name__)

# the rt_info key that records how an IR was quantized, beside Ultralytics' own keys
QUANTIZATION_KEY = "quantization"
_LAYER = re.compile(r"(?:^|/)model\.(\d+)/")


def default_folder(model: str | Path, half: bool = False, int8: bool = False) -> Path:
    """yolo11n-seg.pt -> yolo11n-seg_openvino_model/ beside it (-fp16 / -int8 before the suffix when so)."""
    path = Path(model)
    tag = "-int8" if int8 else "-fp16" if half else ""
    return path.with_name(f"{path.stem}{tag}{FOLDER_SUFFIX}")


def ir_path(out: Path, stem: str) -> Path:
    """The .xml an output names: `out` itself when it ends in .xml, else stem.xml inside the folder `out`."""
    return out if out.suffix.lower() == IR_SUFFIX else out / f"{stem}{IR_SUFFIX}"


def to_openvino(onnx_path: str | Path, out: str | Path, *, half: bool = False, int8: bool = False,
                calib_dir: str | Path | None = None, calib_images: int = 200, stem: str | None = None) -> Path:
    """Converts an Ultralytics YOLO-seg ONNX export to an OpenVINO IR at `out` (a folder, or an .xml path); returns
    the .xml path. half: FP16 weights (the CPU computes in f32 from them; GPUs in f16). int8: NNCF post-training
    quantization (mixed preset: symmetric weights, asymmetric activations) calibrated on `calib_images` images of
    `calib_dir` letterboxed as edgeseg does; the head's decoding stays float, as in the ONNX INT8 export
    (quantize.float_nodes). `stem`: the IR's file name in a folder (default: the ONNX file's)."""
    import onnx

    onnx_path, out = Path(onnx_path), Path(out)
    if half and int8:
        raise ExportError("choose one of half (FP16) and int8")
    target = ir_path(out, stem or onnx_path.stem)
    check_writable(target)
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("exporting to OpenVINO needs openvino: pip install 'edgeseg[openvino]'") from None
    proto = onnx.load(onnx_path)
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:
        raise ExportError(f"OpenVINO could not convert {onnx_path.name}: {_first_line(e)}") from e
    if int8:
        model = _quantize(model, proto, calib_dir, calib_images)
        model.set_rt_info("int8 (NNCF post-training, mixed preset), head decoding float", ["framework",
                                                                                          QUANTIZATION_KEY])
    with tempfile.TemporaryDirectory(prefix="edgeseg-openvino-") as work:
        written = Path(work) / target.name
        try:
            ov.save_model(model, written, compress_to_fp16=half)
        except Exception as e:
            raise ExportError(f"OpenVINO could not save the IR of {onnx_path.name}: {_first_line(e)}") from e
        files = [written, written.with_suffix(WEIGHTS_SUFFIX)]
        if out.suffix.lower() != IR_SUFFIX:  # a folder, as Ultralytics writes it: with its metadata.yaml
            files.append(_write_metadata_yaml(props, Path(work) / METADATA_YAML))
        _place_all(files, target.parent)
    return target


def _quantize(model: Any, proto: Any, calib_dir: str | Path | None, calib_images: int) -> Any:
    try:
        import nncf
    except ImportError:
        raise ExportError("INT8 for OpenVINO needs nncf: pip install nncf (part of the export extra)") from None
    from .quantize import LetterboxReader, calibration_files

    if calib_dir is None:
        raise ExportError("int8 needs calibration images: pass calib_dir (a folder of typical images)")
    files = calibration_files(calib_dir, calib_images)
    reader = LetterboxReader(files, proto)
    batches = []
    while (item := reader.get_next()) is not None:
        batches.append(item[reader.name])
    head = _head_layer(proto)
    # as quantize.float_nodes: the head's own operations (DFL, anchors, sigmoid, concatenations) and everything
    # outside the numbered layers (an NMS wrapper) stay float; the head's learned branches are quantized
    ignored = nncf.IgnoredScope(patterns=[rf"^(.*/)?model\.{head}/[^/]+$", rf"^(.*/)?model\.{head}/dfl/.*"],
                                validate=False)
    log.info("quantizing with NNCF on %d images of %s; layer %d's decoding stays float", len(files), calib_dir, head)
    try:
        return nncf.quantize(model, nncf.Dataset(batches), preset=nncf.QuantizationPreset.MIXED,
                             subset_size=len(batches), ignored_scope=ignored)
    except EdgesegError:
        raise
    except Exception as e:
        raise ExportError(f"NNCF could not quantize the model: {_first_line(e)}") from e


def _head_layer(proto: Any) -> int:
    indices = [int(m.group(1)) for node in proto.graph.node if (m := _LAYER.search(node.name))]
    if not indices:
        raise ExportError("cannot find the YOLO head: the node names carry no '/model.N/' layer scopes, "
                          "so this is not an Ultralytics ONNX export; export the model with Ultralytics")
    return max(indices)


def _write_metadata_yaml(props: dict[str, str], path: Path) -> Path:
    """Ultralytics' metadata.yaml from the ONNX metadata strings (Python literals parsed back, as Ultralytics writes
    them), so that Ultralytics' YOLO() loads the folder too."""
    import ast

    import yaml

    def value(text: str) -> Any:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    data = {key: value(text) if key != "task" else text for key, text in props.items()}
    if ModelMetadata.from_strings(props).names is None:
        log.warning("the ONNX export has no class names: metadata.yaml lists none")
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _place_all(files: list[Path], folder: Path) -> None:
    """Moves finished files into `folder` (created), each under a temporary name first, then renamed over."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for produced in files:
            tmp = folder / f".{produced.name}.tmp"
            shutil.copyfile(produced, tmp)
            tmp.replace(folder / produced.name)
    except OSError as e:
        raise OutputError(f"cannot write into {folder}: {e.strerror or e}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

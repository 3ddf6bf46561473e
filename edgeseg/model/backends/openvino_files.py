"""The files of a model OpenVINO runs, and what they say about the model: an .onnx file, an IR (m.xml beside its
weights m.bin) or the folder Ultralytics exports (m_openvino_model/ with the IR and metadata.yaml). Reads no network:
the backend (openvino.py) does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ModelFormatError, ModelNotFoundError

IR_SUFFIX, WEIGHTS_SUFFIX = ".xml", ".bin"
METADATA_YAML = "metadata.yaml"  # what Ultralytics writes beside its IR
FOLDER_SUFFIX = "_openvino_model"  # Ultralytics' name for the folder: yolo11n-seg_openvino_model/
# where a model's Ultralytics metadata sits in its rt_info: the ONNX frontend puts an ONNX file's metadata_props under
# "framework", and convert_model / save_model keep it there, so an .onnx, edgeseg's IR and ONNX-converted IRs agree
RT_INFO_SECTION = "framework"


@dataclass(frozen=True)
class OpenVinoFiles:
    """model: the .onnx or .xml file OpenVINO reads; weights: the IR's .bin (None for ONNX); metadata_yaml:
    Ultralytics' metadata.yaml beside the IR, when there is one."""

    model: Path
    weights: Path | None = None
    metadata_yaml: Path | None = None

    @property
    def is_ir(self) -> bool:
        return self.weights is not None


def is_openvino_model(path: Path) -> bool:
    """An IR (.xml) or a folder holding one: what open_backend gives to OpenVINO by its suffix."""
    if path.suffix.lower() == IR_SUFFIX:
        return True
    try:
        return path.is_dir() and (path.name.endswith(FOLDER_SUFFIX) or any(path.glob(f"*{IR_SUFFIX}")))
    except OSError:
        return False


def find_files(path: Path) -> OpenVinoFiles:
    """The files of the model `path` names: an .onnx, an .xml (its .bin beside it) or a folder holding one .xml.

    Raises:
        ModelNotFoundError: `path`, or the .bin of an IR, does not exist.
        ModelFormatError: a folder without exactly one .xml; a lone .bin; any other suffix.
    """
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        irs = sorted(path.glob(f"*{IR_SUFFIX}"))
        if len(irs) != 1:
            found = f"{len(irs)}: {', '.join(p.name for p in irs)}" if irs else "none"
            raise ModelFormatError(f"{path} is a folder: an OpenVINO model folder holds one IR .xml file (with its "
                                   f".bin), found {found}; give the .xml file itself")
        path = irs[0]
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OpenVinoFiles(path)
    if suffix == WEIGHTS_SUFFIX:
        raise ModelFormatError(f"{path.name} holds an IR's weights only: give its .xml file, "
                               f"{path.with_suffix(IR_SUFFIX).name}, or the folder of both")
    if suffix != IR_SUFFIX:
        raise ModelFormatError(f"{path.name}: OpenVINO runs .onnx files, IR .xml files (with their .bin) and "
                               f"Ultralytics' {FOLDER_SUFFIX} folders, not {suffix or 'files without a suffix'}")
    weights = path.with_suffix(WEIGHTS_SUFFIX)
    if not weights.is_file():
        raise ModelNotFoundError(f"{path.name} is an OpenVINO IR whose weights file {weights.name} is missing: "
                                 f"copy {weights.name} beside it (an IR is the .xml and the .bin together)")
    beside = path.parent / METADATA_YAML
    return OpenVinoFiles(path, weights, beside if beside.is_file() else None)


def metadata_strings(files: OpenVinoFiles, rt_info: Any) -> dict[str, str]:
    """The model's Ultralytics metadata as ONNX metadata_props strings (what ModelMetadata.from_strings parses):
    from metadata.yaml beside an IR when it is there (Ultralytics' own export), else from the model's rt_info."""
    if files.metadata_yaml is not None:
        from ...config import read_yaml

        return as_strings(read_yaml(files.metadata_yaml, f"{files.model.name}'s metadata"))
    section = rt_info[RT_INFO_SECTION] if RT_INFO_SECTION in rt_info else None
    if section is not None:
        return {str(key): _any_to_str(value) for key, value in section.items()}
    # Ultralytics' own IR without its metadata.yaml: its rt_info holds the class names only, space separated
    info = rt_info["model_info"] if "model_info" in rt_info else None
    labels = _any_to_str(info["labels"]) if info is not None and "labels" in info else ""
    return {"names": repr(dict(enumerate(labels.split())))} if labels else {}


def as_strings(data: Mapping[str, Any]) -> dict[str, str]:
    """YAML values (names as a mapping, imgsz as a list, ...) -> the Python-literal strings Ultralytics writes into
    an ONNX file's metadata: 'segment' stays 'segment', [320, 320] becomes '[320, 320]'."""
    return {str(k): v if isinstance(v, str) else repr(v) for k, v in data.items()}


def _any_to_str(value: Any) -> str:
    """An rt_info value (openvino's OVAny, or a nested map) as a string."""
    try:
        return str(value.astype(str))
    except (AttributeError, RuntimeError, TypeError):
        return str(getattr(value, "value", value))

"""Inference backends behind one small interface (see base.Backend): onnxruntime.py runs .onnx models; tensorrt.py
runs TensorRT engines, whose files engine_file.py reads and whose GPU memory cuda_runtime.py manages; openvino.py runs
.onnx models, OpenVINO IRs and Ultralytics' _openvino_model folders, whose files openvino_files.py finds."""

from __future__ import annotations

import importlib.util
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from ...config import BACKENDS, ProviderOptions
from ...errors import ConfigError, ModelFormatError, ModelNotFoundError, ProviderError
from .base import Backend, TensorSpec

__all__ = ["Backend", "TensorSpec", "open_backend", "backend_takes", "SUFFIXES"]

# model file suffix -> what runs it
SUFFIXES = {".onnx": "ONNX Runtime", ".engine": "TensorRT", ".plan": "TensorRT", ".xml": "OpenVINO"}
# what each backend setting runs: the suffixes (and "folder", Ultralytics' _openvino_model/) it takes
BACKEND_INPUTS = {"onnxruntime": (".onnx",), "tensorrt": (".engine", ".plan"),
                  "openvino": (".onnx", ".xml", "folder")}
TENSORRT_NAMES = ("tensorrt", "trt", "tensorrtexecutionprovider")
CHECKPOINT_SUFFIX = ".pt"  # Ultralytics' PyTorch checkpoints: edgeseg runs their export, never the file itself
EXPORT_MODULES = ("ultralytics", "torch")  # what `edgeseg export` needs (the export extra)


def open_backend(model: str | Path, providers: str | Sequence[str] = "auto",
                 options: ProviderOptions | None = None, backend: str = "auto") -> Backend:
    """Opens a model file with `backend`, or with the one its suffix names ("auto"): .onnx with ONNX Runtime (on
    `providers`), .engine and .plan with TensorRT (a serialized engine runs on TensorRT only), an OpenVINO IR (.xml
    with its .bin) or Ultralytics' _openvino_model folder with OpenVINO. backend="openvino" runs an .onnx file on
    OpenVINO too (on options.openvino_device, or DEV of providers 'openvino:DEV')."""
    if not isinstance(model, (str, os.PathLike)):
        raise ModelNotFoundError(f"model must be the path of an .onnx, .engine, .plan or .xml file, got "
                                 f"{type(model).__name__}")
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    path = Path(model)
    if backend == "openvino" or (backend == "auto" and _openvino_input(path, providers)):
        from .openvino import OpenVinoBackend

        return OpenVinoBackend(path, providers=providers, options=options)
    if path.suffix.lower() == CHECKPOINT_SUFFIX:  # before the existence check: missing or not, it cannot run here
        raise ModelFormatError(_checkpoint_advice(path))
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as e:  # e.g. a parent folder this user may not enter
        raise ModelNotFoundError(f"cannot reach model file {path}: {e.strerror or e}") from None
    if not exists:
        raise ModelNotFoundError(f"model file not found: {path}")
    if not is_file:
        raise ModelFormatError(f"model path is not a file: {path}")
    suffix = path.suffix.lower()
    if backend != "auto" and suffix not in BACKEND_INPUTS[backend]:
        raise ModelFormatError(f"{path.name}: the {backend} backend runs "
                               f"{', '.join(BACKEND_INPUTS[backend])} files, not {suffix or '(no suffix)'}")
    if suffix == ".onnx":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, providers=providers, options=options)
    if SUFFIXES.get(suffix) == "TensorRT":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(path, device_id=_engine_device(path, providers, options or ProviderOptions()))
    raise ModelFormatError(f"{path.name}: unknown model file type {suffix or '(no suffix)'!r}; "
                           f"edgeseg runs {_supported()}")


def backend_takes(backend: str, model: str | Path) -> bool:
    """Whether `backend` can open `model` by its kind of file ("auto" takes any: it picks by the file)."""
    if backend == "auto":
        return True
    path = Path(model)
    inputs = BACKEND_INPUTS.get(backend, ())
    return path.suffix.lower() in inputs or ("folder" in inputs and path.is_dir())


def _supported() -> str:
    return ", ".join(f"{s} ({runner})" for s, runner in SUFFIXES.items()) + " and _openvino_model folders (OpenVINO)"


def _openvino_input(path: Path, providers: str | Sequence[str]) -> bool:
    """Whether "auto" gives `path` to OpenVINO: an IR, a folder holding one, or any model with providers
    'openvino:DEVICE' (ONNX Runtime's own OpenVINO provider, plain 'openvino', takes no device)."""
    from .openvino_files import is_openvino_model

    requests = [providers] if isinstance(providers, str) and providers != "auto" else (
        [] if providers == "auto" else list(providers))
    named = len(requests) == 1 and str(requests[0]).lower().startswith("openvino:")
    weights = path.suffix.lower() == ".bin" and path.with_suffix(".xml").exists()  # an IR's other half
    return named or weights or is_openvino_model(path)


def _checkpoint_advice(path: Path) -> str:
    """What to do with a PyTorch checkpoint given as a model: its ONNX file, when one lies beside it; else how to
    export one. The export is never run implicitly: it needs PyTorch, takes a while and writes a file, none of which
    loading a model should do unasked."""
    onnx = path.with_suffix(".onnx")
    head = f"{path.name} is a PyTorch checkpoint, an unknown model file type for edgeseg, which runs {_supported()}"
    try:
        exported = onnx.is_file()
    except OSError:  # a folder this user may not enter: the advice to export still holds
        exported = False
    if exported:
        return f"{head}: give {onnx}, its export beside it (or export it again with `edgeseg export {_quoted(path)}`)"
    if all(importlib.util.find_spec(m) is not None for m in EXPORT_MODULES):
        return f"{head}: export it once with `edgeseg export {_quoted(path)}`, which writes {onnx.name} beside it"
    return (f"{head}: export it once with `edgeseg export {_quoted(path)}` (needs the export extra: "
            f"pip install \"edgeseg[export]\"), which writes {onnx.name} beside it")


def _quoted(path: Path) -> str:
    return shlex.quote(os.fspath(path))


def _engine_device(path: Path, providers: str | Sequence[str], options: ProviderOptions) -> int:
    """The GPU a TensorRT engine runs on: 'tensorrt:N', else options.device_id, else 0. Any provider other than
    TensorRT is an error: an engine cannot run anywhere else, and ignoring the request would hide that."""
    if providers == "auto":
        return options.device_id or 0
    requests = [providers] if isinstance(providers, str) else list(providers)
    name, _, device = str(requests[0]).partition(":") if len(requests) == 1 else ("", "", "")
    if name.lower() not in TENSORRT_NAMES or (device and not device.isdigit()):
        raise ProviderError(f"{path.name} is a TensorRT engine: it runs on TensorRT only, not on "
                            f"{', '.join(map(str, requests))}; use providers 'auto' or 'tensorrt[:N]' "
                            "(or the .onnx model for other providers)")
    if not device:
        return options.device_id or 0
    if options.device_id is not None and options.device_id != int(device):
        raise ProviderError(f"'{requests[0]}' asks for GPU {device} but device_id is {options.device_id}; give one")
    return int(device)

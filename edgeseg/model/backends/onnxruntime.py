"""ONNX Runtime backend: provider selection, session creation, inference."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...config import ProviderOptions
from ...errors import ConfigError, ModelFormatError, ModelNotFoundError, OutputError, ProviderError
from .base import Backend, TensorSpec

log = logging.getLogger(__name__)

# Priority of "auto": the fastest provider the installed onnxruntime offers comes first.
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
# Providers that take a device id from a "name:N" request.
DEVICE_OPTION = {"CUDAExecutionProvider": "device_id", "TensorrtExecutionProvider": "device_id"}
# Each GPU provider's own name for capturing the network as a CUDA graph.
GRAPH_OPTION = {"CUDAExecutionProvider": "enable_cuda_graph", "TensorrtExecutionProvider": "trt_cuda_graph_enable"}
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def resolve_providers(
    requested: str | Sequence[str], available: Sequence[str], options: ProviderOptions | None = None
) -> list[Any]:
    """Turns 'auto' or names like 'cuda', 'cuda:1', 'CPUExecutionProvider' into onnxruntime's providers list.

    'auto' takes TensorRT, then CUDA, then CPU, as available. A provider asked for by name that the
    installed onnxruntime does not offer is a ProviderError, never a silent fallback. `options` become each
    provider's option dict (see provider_settings); a provider without options stays a plain name.
    """
    options = options or ProviderOptions()
    if requested == "auto":
        names = [p for p in AUTO_ORDER if p in available] or list(available)
        return [_with_settings(name, None, options, name) for name in names]
    chosen: list[Any] = []
    for item in requested:
        name, _, device = str(item).partition(":")
        full = ALIASES.get(name.lower(), name)
        if full not in available:
            raise ProviderError(f"execution provider '{item}' is not available; this onnxruntime offers: "
                                f"{', '.join(available)}{_gpu_install_hint(full)}")
        if device and (full not in DEVICE_OPTION or not device.isdigit()):
            raise ProviderError(f"bad provider request '{item}': only cuda:N and tensorrt:N take a device index")
        chosen.append(_with_settings(full, int(device) if device else None, options, str(item)))
    trt_settings = sorted(provider_settings("TensorrtExecutionProvider", options).keys()
                          - {"device_id", GRAPH_OPTION["TensorrtExecutionProvider"]})
    if trt_settings and all((c[0] if isinstance(c, tuple) else c) != "TensorrtExecutionProvider" for c in chosen):
        log.warning("edgeseg: TensorRT options (%s) have no effect: TensorRT is not among the providers %s",
                    ", ".join(trt_settings), ", ".join(map(str, requested)))
    if options.enable_cuda_graph and all((c[0] if isinstance(c, tuple) else c) not in GRAPH_OPTION for c in chosen):
        log.warning("edgeseg: enable_cuda_graph has no effect: neither CUDA nor TensorRT is among the providers %s",
                    ", ".join(map(str, requested)))
    return chosen


def provider_settings(provider: str, options: ProviderOptions) -> dict[str, Any]:
    """onnxruntime's option dict for one provider: only the settings that were given (the rest keep onnxruntime's
    defaults). Booleans and integers are passed as such; onnxruntime turns them into its own strings."""
    settings: dict[str, Any] = {}
    if provider in DEVICE_OPTION and options.device_id is not None:
        settings[DEVICE_OPTION[provider]] = options.device_id
    if provider in GRAPH_OPTION and options.enable_cuda_graph:
        settings[GRAPH_OPTION[provider]] = True
    if provider == "TensorrtExecutionProvider":
        if options.trt_fp16:
            settings["trt_fp16_enable"] = True
        if options.trt_int8:
            settings["trt_int8_enable"] = True
        if options.trt_engine_cache:
            settings["trt_engine_cache_enable"] = True
            settings["trt_engine_cache_path"] = options.trt_engine_cache
        if options.trt_timing_cache:
            settings["trt_timing_cache_enable"] = True
            settings["trt_timing_cache_path"] = options.trt_timing_cache
        if options.trt_workspace_gib:
            settings["trt_max_workspace_size"] = int(options.trt_workspace_gib * 2**30)
    elif provider == "CUDAExecutionProvider" and options.cudnn_conv_algo_search:
        settings["cudnn_conv_algo_search"] = options.cudnn_conv_algo_search
    return settings


def _with_settings(provider: str, device: int | None, options: ProviderOptions, request: str) -> Any:
    settings = provider_settings(provider, options)
    if device is not None:
        if options.device_id is not None and options.device_id != device:
            raise ProviderError(f"'{request}' asks for GPU {device} but device_id is {options.device_id}; give one")
        settings[DEVICE_OPTION[provider]] = device
    return (provider, settings) if settings else provider


def make_cache_folders(providers: Sequence[Any]) -> None:
    """Creates the TensorRT provider's engine and timing cache folders of a resolved providers list (onnxruntime
    does not, and fails late with an unclear message when they are missing)."""
    for item in providers:
        if not isinstance(item, tuple):
            continue
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            folder = item[1].get(key)
            if folder is None:
                continue
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create the TensorRT cache folder {folder}: {e.strerror or e}") from None


def _gpu_install_hint(provider: str) -> str:
    if provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return ""
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions() if d.metadata["Name"]}
    if {"onnxruntime", "onnxruntime-gpu"} <= installed:
        return ("; both onnxruntime and onnxruntime-gpu are installed and the CPU one shadows the GPU one: "
                "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
    return "; install the GPU build: pip uninstall -y onnxruntime && pip install onnxruntime-gpu"


class OnnxRuntimeBackend(Backend):
    """An onnxruntime.InferenceSession behind the Backend interface.

    infer() returns the arrays onnxruntime allocates for each run; the caller owns them. infer_on_device() runs with
    IO binding and leaves the outputs where the first provider runs (GPU memory for CUDA and TensorRT): the GPU
    path reads them in place.
    """

    kind = "ONNX Runtime"

    def __init__(
        self,
        path: str | Path,
        providers: str | Sequence[str] = "auto",
        options: ProviderOptions | None = None,
    ):
        path = Path(path)
        if not path.exists():
            raise ModelNotFoundError(f"model file not found: {path}")
        if not path.is_file():
            raise ModelFormatError(f"model path is not a file: {path}")
        import onnxruntime as ort

        chosen = resolve_providers(providers, ort.get_available_providers(), options)
        make_cache_folders(chosen)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options is not None and options.cpu_threads:
            session_options.intra_op_num_threads = options.cpu_threads
        if options is not None and not options.cpu_spinning:
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), session_options, providers=chosen)
        except Exception as e:  # onnxruntime raises several unrelated types for unreadable files
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFormatError(f"cannot load {path} as an ONNX model (truncated, corrupt or not ONNX): "
                                   f"{detail}") from e
        self.providers = tuple(self._session.get_providers())
        wanted = [p[0] if isinstance(p, tuple) else p for p in chosen]
        if providers != "auto" and wanted[0] not in self.providers:
            raise ProviderError(f"onnxruntime could not start {wanted[0]} for {path.name} (it fell back to "
                                f"{self.providers[0]}); check the CUDA/TensorRT libraries")
        log.info("edgeseg: %s runs on %s", path.name, ", ".join(self.providers))

        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelFormatError(f"{path.name} has {len(inputs)} inputs; a YOLO model has one image input")
        self.input = _spec(inputs[0])
        self.outputs = tuple(_spec(o) for o in self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.path = path
        self._ort = ort
        first = chosen[0] if chosen else "CPUExecutionProvider"
        name, settings = first if isinstance(first, tuple) else (first, {})
        # IO binding: outputs stay where the first provider computes them
        self.outputs_on_gpu = name in DEVICE_OPTION and name == self.providers[0]
        self.binding_device = ("cuda", int(settings.get("device_id", 0))) if self.outputs_on_gpu else ("cpu", 0)
        self.cuda_graph = bool(self.outputs_on_gpu and options is not None and options.enable_cuda_graph)
        self.outputs_reused = self.cuda_graph  # a graph replays into the same output buffers every run
        self._binding: Any = None
        self._bound_input: Any = None  # the OrtValue the input is copied into, reused while its shape holds
        self._bound_outputs: list[Any] | None = None  # CUDA graph: the fixed output buffers

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self._output_names, {self.input.name: batch})

    def _infer_on_device(self, batch: np.ndarray) -> list[Any]:
        """Runs with IO binding: `batch` is copied once into a reused input buffer on `binding_device`, the outputs
        are left there as onnxruntime.OrtValues (keep them as long as their memory is read). With a CUDA graph the
        outputs are the same fixed buffers every run: the next run overwrites them."""
        ort, (kind, index) = self._ort, self.binding_device
        if self._binding is None:
            self._binding = self._session.io_binding()
        value = self._bound_input
        if value is None or tuple(value.shape()) != batch.shape:
            if self.cuda_graph and value is not None:
                raise ConfigError(f"{self.path.name}: a CUDA graph replays one input shape, {tuple(value.shape())}; "
                                  f"got {batch.shape} (turn enable_cuda_graph off for changing shapes)")
            value = ort.OrtValue.ortvalue_from_shape_and_type(list(batch.shape), batch.dtype, kind, index)
            self._binding.bind_ortvalue_input(self.input.name, value)
            self._bound_input = value
        value.update_inplace(np.ascontiguousarray(batch))  # the one host-to-device copy of the frame
        if self.cuda_graph:
            if self._bound_outputs is None:  # the graph replays into fixed addresses: bind fixed buffers once
                self._bound_outputs = [self._fixed_output(spec, kind, index) for spec in self.outputs]
                for spec, out in zip(self.outputs, self._bound_outputs, strict=True):
                    self._binding.bind_ortvalue_output(spec.name, out)
        else:  # fresh outputs every run, so that values a caller still holds are never overwritten
            self._binding.clear_binding_outputs()
            for name in self._output_names:
                self._binding.bind_output(name, kind, index)
        self._session.run_with_iobinding(self._binding)
        return list(self._bound_outputs) if self.cuda_graph else self._binding.get_outputs()

    def _fixed_output(self, spec: TensorSpec, kind: str, index: int) -> Any:
        if None in spec.shape:
            raise ConfigError(f"{self.path.name}: output '{spec.name}' has a dynamic shape {spec.shape}; a CUDA graph "
                              "needs fixed shapes (export without dynamic=True, or turn enable_cuda_graph off)")
        return self._ort.OrtValue.ortvalue_from_shape_and_type(list(spec.shape), spec.dtype, kind, index)

    def _close(self) -> None:
        self._binding = self._bound_input = self._bound_outputs = None
        self._session = None


def _spec(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(ORT_DTYPES.get(node.type, np.float32)))

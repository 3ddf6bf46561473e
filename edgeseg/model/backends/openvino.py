"""OpenVINO backend: an .onnx file, an IR (.xml + .bin) or Ultralytics' _openvino_model folder, compiled for one
OpenVINO device (CPU, GPU, NPU, AUTO, ...), with a performance hint, CPU threads and compiled-model caching."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...config import ProviderOptions
from ...errors import ModelFormatError, OutputError, ProviderError
from .base import Backend, TensorSpec
from .openvino_files import find_files, metadata_strings

log = logging.getLogger(__name__)

NAME = "openvino"  # the backend's name in a providers request: "openvino" or "openvino:GPU"
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
# devices that name other devices after a colon: "AUTO:GPU,CPU", "HETERO:GPU,CPU"
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
OV_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "u8": np.uint8, "i32": np.int32,
             "i64": np.int64}


def resolve_device(requested: str | Sequence[str], options: ProviderOptions, model: str) -> str:
    """The OpenVINO device to compile for: from a providers request 'openvino:GPU', else options.openvino_device,
    else CPU. Any other providers request is a ProviderError: providers name ONNX Runtime's execution providers."""
    device = options.openvino_device
    if requested == "auto":
        return device or "CPU"
    requests = [requested] if isinstance(requested, str) else list(requested)
    name, _, named = str(requests[0]).partition(":") if len(requests) == 1 else ("", "", "")
    if name.lower() != NAME:
        raise ProviderError(f"{model} runs on the OpenVINO backend, not on {', '.join(map(str, requests))}: give "
                            "providers 'auto' or 'openvino[:DEVICE]', or the device as "
                            "provider_options.openvino_device (CPU, GPU, NPU, AUTO)")
    named = named.strip().upper()
    if named and device and named != device:
        raise ProviderError(f"'{requests[0]}' asks for device {named} but openvino_device is {device}; give one")
    return named or device or "CPU"


def check_device(device: str, available: Sequence[str]) -> None:
    """ProviderError naming the devices OpenVINO has when `device` (or a device an AUTO/MULTI/HETERO list names) is
    not one of them: never a silent fallback to another device."""
    kind, _, listed = device.partition(":")
    wanted = [d for d in listed.split(",") if d] if kind in VIRTUAL_DEVICES else [device]
    for name in wanted:
        # "GPU" matches "GPU.0" and "GPU.1"; "GPU.1" must be listed as such
        if not any(a == name or a.split(".")[0] == name for a in available):
            raise ProviderError(f"OpenVINO device '{name}' is not available; this machine offers: "
                                f"{', '.join(available) or 'none'} (or AUTO to let OpenVINO choose among them)")


def compile_config(device: str, options: ProviderOptions) -> dict[str, Any]:
    """compile_model's properties: the performance hint (latency unless openvino_hint says throughput), the
    precision (openvino_precision; f32 on the CPU by default, where OpenVINO would pick bf16 on CPUs that have it)
    and, where the CPU runs the model, its thread count."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": HINTS[options.openvino_hint or "latency"]}
    precision = options.openvino_precision or ("f32" if device == "CPU" else None)
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    if options.cpu_threads:
        if device == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.cpu_threads
        elif "CPU" in device:  # AUTO:GPU,CPU and friends: the CPU's own setting, passed through
            config["DEVICE_PROPERTIES"] = {"CPU": {"INFERENCE_NUM_THREADS": options.cpu_threads}}
        else:
            log.warning("edgeseg: cpu_threads has no effect: OpenVINO runs %s on %s", device, device)
    return config


class OpenVinoBackend(Backend):
    """An openvino.CompiledModel behind the Backend interface.

    infer() returns arrays that the caller owns: each run writes into output arrays allocated for it (no copy).
    Thread-safe: each call takes an idle infer request (more are made as calls overlap), so with the throughput
    hint several threads run batches at once. infer_many() keeps the device busy from one thread with an
    AsyncInferQueue.
    """

    kind = "OpenVINO"

    def __init__(self, path: str | Path, providers: str | Sequence[str] = "auto",
                 options: ProviderOptions | None = None):
        options = options or ProviderOptions()
        given = Path(path)
        files = find_files(given)
        import openvino as ov

        core = ov.Core()
        device = resolve_device(providers, options, given.name)
        check_device(device, core.available_devices)
        if options.openvino_cache:
            try:
                Path(options.openvino_cache).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create the OpenVINO cache folder {options.openvino_cache}: "
                                  f"{e.strerror or e}") from None
            core.set_property({"CACHE_DIR": options.openvino_cache})
        what = "an OpenVINO IR" if files.is_ir else "an ONNX model"
        try:
            model = core.read_model(str(files.model), str(files.weights) if files.weights else None)
        except Exception as e:  # openvino raises RuntimeError with pages of frontend detail
            raise ModelFormatError(f"cannot load {files.model} as {what} (truncated, corrupt or not {what[3:]}): "
                                   f"{_first_line(e)}") from e
        if len(model.inputs) != 1:
            raise ModelFormatError(f"{given.name} has {len(model.inputs)} inputs; a YOLO model has one image input")
        self.metadata = metadata_strings(files, model.get_rt_info())
        self.input = _spec(model.inputs[0], "images")
        self.outputs = tuple(_spec(o, f"output{k}") for k, o in enumerate(model.outputs))
        try:
            # from the model file's path rather than the read model: with CACHE_DIR a later start loads the compiled
            # blob instead of compiling (measured: first result 0.89 s, then 0.44 s); the read above gives the metadata
            source = str(files.model) if options.openvino_cache else model
            self._compiled = core.compile_model(source, device, compile_config(device, options))
        except Exception as e:
            raise ProviderError(f"OpenVINO could not compile {given.name} for {device}: {_first_line(e)}") from e
        self.path = given
        self.device = device
        self.providers = (f"OpenVINO:{device}",)
        self._ov = ov
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._fixed_outputs = all(None not in s.shape for s in self.outputs)
        log.info("edgeseg: %s runs on OpenVINO %s (%s hint)", given.name, device, options.openvino_hint or "latency")

    @property
    def optimal_requests(self) -> int:
        """How many requests the device wants in flight (1 with the latency hint on a CPU)."""
        return int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    @property
    def requests_in_flight(self) -> int:  # type: ignore[override]
        """A video pipeline keeps the device's optimal number of runs going (infer() is thread-safe)."""
        return self.optimal_requests

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            return self._run(request, batch)
        finally:
            self._idle.put(request)

    def _run(self, request: Any, batch: np.ndarray) -> list[np.ndarray]:
        request.set_input_tensor(self._ov.Tensor(np.ascontiguousarray(batch), shared_memory=True))
        if not self._fixed_outputs:  # shapes known only after the run: copies of the request's own outputs
            request.infer()
            return [request.get_output_tensor(k).data.copy() for k in range(len(self.outputs))]
        # fresh arrays for this run, written in place: the caller keeps them while the next run writes elsewhere
        outputs = [np.empty(self._batch_shape(spec, batch.shape[0]), spec.dtype) for spec in self.outputs]
        for k, out in enumerate(outputs):
            request.set_output_tensor(k, self._ov.Tensor(out, shared_memory=True))
        request.infer()
        return outputs

    def infer_many(self, batches: Iterable[np.ndarray], jobs: int | None = None) -> Iterator[list[np.ndarray]]:
        """The outputs of each batch, in order, with `jobs` (default: optimal_requests) runs in flight at once: with
        the throughput hint the device's streams work in parallel from one thread. Each batch is checked as infer()
        checks it, and must not change until its outputs are yielded.

        Requests are started asynchronously in turn (batch k on request k % jobs), so the oldest run is always the
        next one to collect: the order holds without Python callbacks (which, in an AsyncInferQueue, made closing
        the compiled model hang, holding the GIL while OpenVINO's threads waited for it)."""
        requests = [self._compiled.create_infer_request() for _ in range(jobs or self.optimal_requests)]
        started: list[int] = []  # the request of each run in flight, oldest first
        try:
            for index, batch in enumerate(batches):
                self._check(batch)
                slot = index % len(requests)
                if len(started) == len(requests):  # every request busy: collect the oldest run, on this slot
                    yield self._collect(requests[started.pop(0)])
                requests[slot].start_async({0: np.ascontiguousarray(batch)}, share_inputs=True)
                started.append(slot)
            while started:
                yield self._collect(requests[started.pop(0)])
        finally:
            for request in requests:
                request.wait()

    def _collect(self, request: Any) -> list[np.ndarray]:
        request.wait()
        return [request.get_output_tensor(k).data.copy() for k in range(len(self.outputs))]

    @staticmethod
    def _batch_shape(spec: TensorSpec, batch: int) -> tuple[int, ...]:
        return (batch, *spec.shape[1:])  # type: ignore[return-value]

    def _close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait()
        self._compiled = None


def _spec(port: Any, fallback: str) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        name = port.get_any_name()
    except RuntimeError:  # a port without a tensor name
        name = fallback
    return TensorSpec(name, shape, np.dtype(OV_DTYPES.get(port.get_element_type().get_type_name(), np.float32)))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

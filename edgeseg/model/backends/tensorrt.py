"""TensorRT backend: runs a serialized engine (.engine / .plan) built by `edgeseg_export.tensorrt_engine`, or by
Ultralytics' `format=engine` export (its metadata header is read).

TensorRT and a CUDA binding for Python are imported when an engine is opened, never at package import. The CUDA
binding is the first of cuda-python, CuPy and PyTorch that imports; every CUDA status is checked and a failure is
a CudaError that names the call. Memory is freed by close() (or the `with` block), not by the garbage collector.

Engine metadata (class names, stride, task, ...) lives in a JSON sidecar, `{engine}.json`, holding the ONNX
model's metadata strings and a fingerprint of the engine it belongs to.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import importlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import ConfigError, CudaError, EdgesegError, ModelFormatError, ModelNotFoundError, ProviderError
from ...outputs.files import write_bytes
from .base import Backend, TensorSpec

log = logging.getLogger("edgeseg")

ENGINE_SUFFIXES = (".engine", ".plan")
MIN_TENSORRT = (8, 5)  # the name-based I/O API (num_io_tensors, set_input_shape, execute_async_v3)
SIDECAR_FORMAT = "edgeseg-engine-metadata/1"
INSTALL_HINT = "pip install tensorrt on a machine with an NVIDIA GPU (on Jetson, TensorRT comes with JetPack)"


# --- TensorRT --------------------------------------------------------------------------------------------------


def import_tensorrt(error: type[EdgesegError] = ProviderError, alternative: str = "") -> Any:
    """The tensorrt module, or `error` saying that TensorRT is missing (or too old) and what to do instead."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as e:
        if e.name in ("tensorrt", "tensorrt_bindings", "tensorrt_libs"):
            raise error(f"TensorRT is not installed: {INSTALL_HINT}{alternative}") from None
        raise error(f"TensorRT is installed but cannot be imported ({e}); check the CUDA and TensorRT "
                    f"libraries{alternative}") from None
    if tensorrt_version(trt) < MIN_TENSORRT:
        raise error(f"TensorRT {trt.__version__} is too old: edgeseg needs {'.'.join(map(str, MIN_TENSORRT))} or "
                    f"newer ({INSTALL_HINT}){alternative}")
    return trt


def tensorrt_version(trt: Any) -> tuple[int, int]:
    major, minor = (trt.__version__.split(".") + ["0"])[:2]
    return int(major), int(minor)


_LOGGER: Any = None


def tensorrt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (TensorRT expects a single logger for all builders and runtimes): sends
    TensorRT's messages to the 'edgeseg' logger and keeps the latest errors for the exceptions edgeseg raises."""
    global _LOGGER
    if _LOGGER is None:
        severity = trt.ILogger.Severity

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.verbose = False
                self.errors: collections.deque[str] = collections.deque(maxlen=8)

            def log(self, level: Any, msg: str) -> None:
                if level in (severity.INTERNAL_ERROR, severity.ERROR):
                    self.errors.append(msg)
                    log.error("TensorRT: %s", msg)
                elif level == severity.WARNING:
                    log.warning("TensorRT: %s", msg)
                elif self.verbose:
                    log.info("TensorRT: %s", msg)
                else:
                    log.debug("TensorRT: %s", msg)

            def take_errors(self) -> str:
                """The errors logged since the last call, joined; '' when there were none."""
                text = "; ".join(self.errors)
                self.errors.clear()
                return text

        _LOGGER = _Logger()
    return _LOGGER


# --- CUDA ------------------------------------------------------------------------------------------------------


@dataclass
class DeviceBuffer:
    """`nbytes` of GPU memory at address `ptr`; `owner` is the binding's own object where it has one."""

    ptr: int
    nbytes: int
    owner: Any = None


@dataclass
class PinnedBuffer:
    """`nbytes` of page-locked host memory, seen from NumPy as `array` (uint8, shape (nbytes,))."""

    array: np.ndarray
    ptr: int
    owner: Any = None


@dataclass
class Stream:
    handle: int  # what TensorRT's execute_async_v3 takes
    owner: Any = None


class CudaRuntime(ABC):
    """The few CUDA runtime calls that running a TensorRT engine needs, from one Python binding.
    Every failure is a CudaError naming the call."""

    name: str

    @abstractmethod
    def set_device(self, device: int) -> None: ...

    @abstractmethod
    def device_buffer(self, nbytes: int) -> DeviceBuffer: ...

    @abstractmethod
    def pinned_buffer(self, nbytes: int) -> PinnedBuffer: ...

    @abstractmethod
    def stream(self) -> Stream: ...

    @abstractmethod
    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        """Queues a copy of the first nbytes of src to dst on the stream."""

    @abstractmethod
    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Stream) -> None: ...

    @abstractmethod
    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None: ...


_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind values


def _host_array(ptr: int, nbytes: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


class _CudaPython(CudaRuntime):
    """NVIDIA's cuda-python: every call returns (status, *results)."""

    name = "cuda-python"

    def __init__(self, cudart: Any):
        self._rt = cudart

    def _call(self, what: str, result: Any) -> Any:
        status, *values = result if isinstance(result, tuple) else (result,)
        if status != self._rt.cudaError_t.cudaSuccess:
            described = self._rt.cudaGetErrorString(status)
            text = described[1].decode() if isinstance(described, tuple) and len(described) > 1 else ""
            detail = f" ({text})" if text else ""
            raise CudaError(f"CUDA call {what} failed: {getattr(status, 'name', status)}{detail}")
        return values[0] if len(values) == 1 else values

    def set_device(self, device: int) -> None:
        self._call(f"cudaSetDevice({device})", self._rt.cudaSetDevice(device))

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call(f"cudaMalloc({nbytes})", self._rt.cudaMalloc(nbytes))), nbytes)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        ptr = int(self._call(f"cudaMallocHost({nbytes})", self._rt.cudaMallocHost(nbytes)))
        return PinnedBuffer(_host_array(ptr, nbytes), ptr)

    def stream(self) -> Stream:
        handle = self._call("cudaStreamCreate", self._rt.cudaStreamCreate())
        return Stream(int(handle), handle)

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync(host to device)",
                   self._rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner))

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync(device to host)",
                   self._rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner))

    def synchronize(self, stream: Stream) -> None:
        self._call("cudaStreamSynchronize", self._rt.cudaStreamSynchronize(stream.owner))

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        if isinstance(item, DeviceBuffer):
            self._call("cudaFree", self._rt.cudaFree(item.ptr))
        elif isinstance(item, PinnedBuffer):
            self._call("cudaFreeHost", self._rt.cudaFreeHost(item.ptr))
        else:
            self._call("cudaStreamDestroy", self._rt.cudaStreamDestroy(item.owner))


class _CuPy(CudaRuntime):
    """CuPy's thin runtime wrappers: raw addresses in, CUDARuntimeError out."""

    name = "cupy"

    def __init__(self, runtime: Any):
        self._rt = runtime

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._rt.CUDARuntimeError as e:
            raise CudaError(f"CUDA call {what} failed: {e}") from None

    def set_device(self, device: int) -> None:
        self._call(f"cudaSetDevice({device})", self._rt.setDevice, device)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call(f"cudaMalloc({nbytes})", self._rt.malloc, nbytes)), nbytes)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        ptr = int(self._call(f"cudaHostAlloc({nbytes})", self._rt.hostAlloc, nbytes, 0))
        return PinnedBuffer(_host_array(ptr, nbytes), ptr)

    def stream(self) -> Stream:
        return Stream(int(self._call("cudaStreamCreate", self._rt.streamCreate)))

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        self._call("cudaMemcpyAsync(host to device)", self._rt.memcpyAsync, dst.ptr, src.ptr, nbytes,
                   _HOST_TO_DEVICE, stream.handle)

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        self._call("cudaMemcpyAsync(device to host)", self._rt.memcpyAsync, dst.ptr, src.ptr, nbytes,
                   _DEVICE_TO_HOST, stream.handle)

    def synchronize(self, stream: Stream) -> None:
        self._call("cudaStreamSynchronize", self._rt.streamSynchronize, stream.handle)

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        if isinstance(item, DeviceBuffer):
            self._call("cudaFree", self._rt.free, item.ptr)
        elif isinstance(item, PinnedBuffer):
            self._call("cudaFreeHost", self._rt.freeHost, item.ptr)
        else:
            self._call("cudaStreamDestroy", self._rt.streamDestroy, item.handle)


class _Torch(CudaRuntime):
    """PyTorch's CUDA tensors as buffers (its caching allocator owns the memory; free() drops the tensor)."""

    name = "torch"

    def __init__(self, torch: Any):
        self._torch = torch
        self._device = 0

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:  # torch.cuda.OutOfMemoryError and CUDA errors are RuntimeErrors
            raise CudaError(f"CUDA call {what} (torch) failed: {str(e).splitlines()[0]}") from None

    def set_device(self, device: int) -> None:
        self._call(f"set_device({device})", self._torch.cuda.set_device, device)
        self._device = device

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        tensor = self._call(f"malloc({nbytes})", self._torch.empty, nbytes, dtype=self._torch.uint8,
                            device=f"cuda:{self._device}")
        return DeviceBuffer(int(tensor.data_ptr()), nbytes, tensor)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        tensor = self._call(f"malloc_host({nbytes})", self._torch.empty, nbytes, dtype=self._torch.uint8,
                            pin_memory=True)
        return PinnedBuffer(tensor.numpy(), int(tensor.data_ptr()), tensor)

    def stream(self) -> Stream:
        stream = self._call("stream_create", self._torch.cuda.Stream, device=self._device)
        return Stream(int(stream.cuda_stream), stream)

    def _copy(self, what: str, dst: Any, src: Any, nbytes: int, stream: Stream) -> None:
        with self._torch.cuda.stream(stream.owner):
            self._call(what, dst[:nbytes].copy_, src[:nbytes], non_blocking=True)

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        self._copy("memcpy_async(host to device)", dst.owner, src.owner, nbytes, stream)

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        self._copy("memcpy_async(device to host)", dst.owner, src.owner, nbytes, stream)

    def synchronize(self, stream: Stream) -> None:
        self._call("stream_synchronize", stream.owner.synchronize)

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        item.owner = None


def load_cuda(error: type[EdgesegError] = ProviderError) -> CudaRuntime:
    """The first CUDA binding that imports: cuda-python, then CuPy, then PyTorch (with CUDA)."""
    tried = []
    for module in ("cuda.bindings.runtime", "cuda.cudart"):  # cuda-python >= 12.6, and older releases
        try:
            return _CudaPython(importlib.import_module(module))
        except ImportError:
            pass
    tried.append("cuda-python")
    try:
        return _CuPy(importlib.import_module("cupy.cuda.runtime"))
    except ImportError:
        tried.append("cupy")
    try:
        torch = importlib.import_module("torch")
        if torch.cuda.is_available():
            return _Torch(torch)
        tried.append("torch (installed without CUDA, or no GPU)")
    except ImportError:
        tried.append("torch")
    raise error(f"no CUDA binding for Python found (tried {', '.join(tried)}): pip install cuda-python "
                "(the major version of your CUDA driver, e.g. 'cuda-python==12.*')")


# --- metadata --------------------------------------------------------------------------------------------------


def sidecar_path(engine: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, engine_data: bytes | memoryview, metadata: Mapping[str, str],
                  build: Mapping[str, Any] | None = None) -> Path:
    """Writes `{engine}.json`: the ONNX model's metadata strings, how the engine was built, and the engine's
    SHA-256, so that a sidecar left over from another build is recognised."""
    record = {
        "format": SIDECAR_FORMAT,
        "engine_sha256": hashlib.sha256(engine_data).hexdigest(),
        "metadata": {str(k): str(v) for k, v in metadata.items()},
        "build": dict(build or {}),
    }
    return write_bytes(sidecar_path(engine), json.dumps(record, indent=1).encode())


@dataclass
class EngineFile:
    """An engine file read from disk: the bytes TensorRT deserializes, and what the file says about itself."""

    data: memoryview
    metadata: dict[str, str] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)  # the sidecar's build record ({} when unknown)
    metadata_source: str = "none"  # "sidecar", "ultralytics header" or "none"


def read_engine_file(path: str | Path) -> EngineFile:
    """Reads an engine and its metadata: Ultralytics' header (4-byte length + JSON, before the engine) when the
    file has one, else the `{engine}.json` sidecar, else none (the Segmenter then goes by the output shapes)."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFormatError(f"model path is not a file: {path}")
    data = memoryview(path.read_bytes())
    header = _ultralytics_header(data)
    if header is not None:
        meta, size = header
        return EngineFile(data[4 + size :], meta, {}, "ultralytics header")
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        log.info("edgeseg: %s has no metadata sidecar %s; class names and head type come from the outputs",
                 path.name, sidecar.name)
        return EngineFile(data)
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"cannot read the engine metadata {sidecar}: {e}; rebuild the engine or delete "
                               "the file") from None
    if not (isinstance(record, dict) and record.get("format") == SIDECAR_FORMAT
            and isinstance(record.get("metadata"), dict)):
        raise ModelFormatError(f"{sidecar} is not an edgeseg engine metadata file (format {SIDECAR_FORMAT})")
    if record.get("engine_sha256") != hashlib.sha256(data).hexdigest():
        raise ModelFormatError(f"{sidecar.name} belongs to another build of {path.name} (its engine fingerprint "
                               "differs): rebuild the engine, or delete the sidecar to run without metadata")
    metadata = {str(k): str(v) for k, v in record["metadata"].items()}
    return EngineFile(data, metadata, record.get("build") or {}, "sidecar")


def _ultralytics_header(data: memoryview) -> tuple[dict[str, str], int] | None:
    """Ultralytics writes len(meta) as int32 little-endian, then the metadata JSON, then the engine. A plain
    engine's first bytes never read as a length that is followed by a JSON object."""
    if len(data) < 6:
        return None
    size = int.from_bytes(data[:4], "little", signed=True)
    if not 2 <= size <= len(data) - 4 or data[4] != ord("{"):
        return None
    try:
        meta = json.loads(bytes(data[4 : 4 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    # Its values are JSON values; edgeseg's metadata are the strings ONNX holds (Python literals), as repr gives.
    return {str(k): v if isinstance(v, str) else repr(v) for k, v in meta.items()}, size


# --- the backend -----------------------------------------------------------------------------------------------


@dataclass
class _Binding:
    """One engine input or output: its device buffer and pinned host buffer, grown when a larger shape needs it."""

    name: str
    dtype: np.dtype
    is_input: bool
    device: DeviceBuffer | None = None
    host: PinnedBuffer | None = None
    shape: tuple[int, ...] = ()
    view: np.ndarray | None = None  # the host buffer seen as `shape` and `dtype`

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


class DeviceOutput:
    """One engine output in its GPU buffer, as __cuda_array_interface__ (CuPy, PyTorch and Numba view it without a
    copy). It keeps the backend alive; the backend's next run overwrites it."""

    def __init__(self, owner: "TensorRTBackend", ptr: int, shape: tuple[int, ...], dtype: np.dtype):
        self.owner = owner
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": self.dtype.str, "data": (int(ptr), False),
                                         "strides": None, "version": 3}


class TensorRTBackend(Backend):
    """A serialized TensorRT engine behind the Backend interface.

    One CUDA stream; a device buffer and a pinned host buffer per input and output, allocated on the first run
    and grown only when a larger input shape needs it. infer() returns views of the pinned output buffers: the
    next infer() overwrites them (copy what you keep); infer_on_device() leaves them in the GPU buffers, which the
    next run overwrites too. Not thread-safe: one backend per thread.
    """

    outputs_on_gpu = True
    outputs_reused = True

    def __init__(self, path: str | Path, device_id: int = 0):
        path = Path(path)
        engine_file = read_engine_file(path)  # missing file / bad sidecar: before any TensorRT import
        self.path = path
        self.metadata = engine_file.metadata
        self.providers = ("TensorRT",)
        self.device_id = device_id
        self.binding_device = ("cuda", device_id)  # where infer_on_device leaves the outputs
        self._cuda: CudaRuntime | None = None
        self._stream: Stream | None = None
        self._bindings: list[_Binding] = []
        self._context: Any = None
        self._engine: Any = None
        self._runtime: Any = None
        trt = import_tensorrt(ProviderError, "; or run the .onnx model on ONNX Runtime's TensorRT provider "
                                             "(--device tensorrt)")
        self._trt = trt
        self._logger = tensorrt_logger(trt)
        cuda = load_cuda(ProviderError)
        cuda.set_device(device_id)
        self._cuda = cuda
        try:
            self._open(trt, engine_file)
        except BaseException:
            self.close()
            raise
        log.info("edgeseg: %s runs on TensorRT %s (GPU %d, CUDA via %s)", path.name, trt.__version__, device_id,
                 cuda.name)

    def _open(self, trt: Any, engine_file: EngineFile) -> None:
        name = self.path.name
        self._logger.take_errors()
        try:  # without a usable GPU the constructor fails (a TypeError from a null pointer) after logging why
            self._runtime = trt.Runtime(self._logger)
        except (TypeError, RuntimeError) as e:
            raise CudaError(f"TensorRT could not start: {self._logger.take_errors() or e} (is there a CUDA GPU and "
                            "a driver that matches this TensorRT?)") from None
        try:  # TensorRT returns None for bytes it cannot read; some releases raise instead
            self._engine = self._runtime.deserialize_cuda_engine(bytes(engine_file.data))
        except (TypeError, RuntimeError) as e:
            self._logger.errors.append(str(e))
        if self._engine is None:
            built = engine_file.build.get("tensorrt")
            versions = (f"it was built with TensorRT {built}, this is {trt.__version__}" if built
                        else f"an engine only runs on the TensorRT version (here {trt.__version__}) and GPU it was "
                             "built for")
            reason = self._logger.take_errors() or "not a TensorRT engine"
            raise ModelFormatError(f"cannot load {name} as a TensorRT engine ({reason}); {versions}: rebuild it "
                                   "on this machine")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise CudaError(f"TensorRT could not create an execution context for {name} "
                            f"({self._logger.take_errors() or 'out of GPU memory?'})")
        inputs, outputs = [], []
        for i in range(self._engine.num_io_tensors):
            tensor = self._engine.get_tensor_name(i)
            try:
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(tensor)))
            except TypeError:
                raise ModelFormatError(f"{name}: tensor '{tensor}' has type {self._engine.get_tensor_dtype(tensor)}, "
                                       "which NumPy cannot hold; build the engine with float32 or float16 I/O"
                                       ) from None
            is_input = self._engine.get_tensor_mode(tensor) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(_Binding(tensor, dtype, is_input))
        if len(inputs) != 1:
            raise ModelFormatError(f"{name} has {len(inputs)} inputs; a YOLO model has one image input")
        self._bindings = inputs + outputs
        self._input = inputs[0]
        engine_shape = tuple(self._engine.get_tensor_shape(self._input.name))
        self.profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
        if -1 in engine_shape:
            low, opt, high = (tuple(s) for s in self._engine.get_tensor_profile_shape(self._input.name, 0))
            self.profile = (low, opt, high)
            # A dimension the profile pins (min == max) is fixed for the Segmenter too: it must not letterbox
            # to another size, or choose another batch, than the engine accepts.
            shape = tuple(d if d >= 0 else (lo if lo == hi else None) for d, lo, hi in zip(engine_shape, low, high))
        else:
            shape = engine_shape
        self.input = TensorSpec(self._input.name, shape, self._input.dtype)
        self.outputs = tuple(
            TensorSpec(b.name, tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(b.name)), b.dtype)
            for b in outputs
        )
        self._stream = self._cuda.stream()

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        cuda, stream = self._execute(batch)
        outputs = self._bindings[1:]
        for b in outputs:
            cuda.download(b.host, b.device, b.nbytes, stream)
        cuda.synchronize(stream)
        return [b.view for b in outputs]

    def infer_on_device(self, batch: np.ndarray) -> list["DeviceOutput"]:
        """Like infer, with the outputs left in the engine's GPU buffers (no download): the GPU path reads them in
        place. The next run overwrites them (outputs_reused)."""
        cuda, stream = self._execute(batch)
        cuda.synchronize(stream)  # finished before any other stream (Numba's) reads them
        return [DeviceOutput(self, b.device.ptr, b.shape, b.dtype) for b in self._bindings[1:]]  # type: ignore

    def _execute(self, batch: np.ndarray) -> tuple[CudaRuntime, Stream]:
        """Uploads `batch` and queues the engine's run on the stream (not waited for)."""
        if self._context is None:
            raise ProviderError(f"the TensorRT backend of {self.path.name} is closed")
        if batch.dtype != self._input.dtype or batch.ndim != len(self.input.shape):
            raise ConfigError(f"{self.path.name} takes a {len(self.input.shape)}-d {self._input.dtype} batch, "
                              f"got {batch.ndim}-d {batch.dtype}")
        cuda, stream = self._cuda, self._stream
        assert cuda is not None and stream is not None
        cuda.set_device(self.device_id)
        if batch.shape != self._input.shape:
            try:
                self._set_shape(tuple(int(d) for d in batch.shape))
            except BaseException:
                self._input.shape = ()  # half set up: set up again on the next run
                raise
        np.copyto(self._input.view, batch)
        cuda.upload(self._input.device, self._input.host, self._input.nbytes, stream)
        if not self._context.execute_async_v3(stream.handle):
            raise CudaError(f"TensorRT could not run {self.path.name} ({self._logger.take_errors() or 'no detail'})")
        return cuda, stream

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        """Sets the input shape, reads the output shapes it gives, and (re)binds buffers large enough for them."""
        name = self.path.name
        fixed = self.input.shape
        if self.profile is not None:
            low, _, high = self.profile
            if not all(lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
                raise ConfigError(f"{name} accepts inputs from {_dims(low)} to {_dims(high)}, got {_dims(shape)}: "
                                  "choose imgsz and batch within that range, or rebuild the engine with a wider "
                                  "profile")
            if not self._context.set_input_shape(self._input.name, shape):
                raise ConfigError(f"TensorRT refused input shape {_dims(shape)} for {name} "
                                  f"({self._logger.take_errors() or 'outside the profile'})")
        elif shape != fixed:
            raise ConfigError(f"{name} takes a fixed input of {_dims(fixed)}, got {_dims(shape)}")  # type: ignore
        for b in self._bindings:
            b.shape = shape if b.is_input else tuple(int(d) for d in self._context.get_tensor_shape(b.name))
            if any(d < 0 for d in b.shape):
                raise ModelFormatError(f"{name}: output '{b.name}' has a data-dependent shape {b.shape}, which "
                                       "edgeseg does not support")
            self._reserve(b)
            if not self._context.set_tensor_address(b.name, b.device.ptr):  # type: ignore[union-attr]
                raise CudaError(f"TensorRT refused the buffer of '{b.name}' for {name} "
                                f"({self._logger.take_errors() or 'no detail'})")

    def _reserve(self, b: _Binding) -> None:
        cuda = self._cuda
        assert cuda is not None
        nbytes = max(b.nbytes, 1)
        if b.device is None or b.device.nbytes < nbytes:
            for old in (b.device, b.host):
                if old is not None:
                    cuda.free(old)
            b.device = b.host = None
            b.device = cuda.device_buffer(nbytes)
            b.host = cuda.pinned_buffer(nbytes)
        b.view = b.host.array[: b.nbytes].view(b.dtype).reshape(b.shape)  # type: ignore[union-attr]

    def close(self) -> None:
        """Frees the GPU and pinned memory, the stream, the context and the engine. Safe to call twice."""
        cuda, self._cuda = self._cuda, None
        if cuda is None:
            return
        problems: list[CudaError] = []
        if self._stream is not None:  # a run that failed half-way may still be using the buffers
            try:
                cuda.synchronize(self._stream)
            except CudaError as e:
                problems.append(e)
        # TensorRT objects go first, newest first: the context uses the engine, the engine the runtime.
        self._context = self._engine = self._runtime = None
        for item in [x for b in self._bindings for x in (b.device, b.host)] + [self._stream]:
            if item is not None:
                try:
                    cuda.free(item)
                except CudaError as e:
                    problems.append(e)
        self._bindings, self._stream = [], None
        if problems:
            raise problems[0]


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)

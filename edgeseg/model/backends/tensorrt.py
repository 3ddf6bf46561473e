"""TensorRT backend: runs a serialized engine (.engine / .plan) built by `edgeseg_export.tensorrt_engine`, or by
Ultralytics' `format=engine` export (engine_file reads the file and its metadata).

TensorRT and a CUDA binding for Python (cuda_runtime) are imported when an engine is opened, never at package
import. Memory is freed by close() (or the `with` block), not by the garbage collector.
"""

from __future__ import annotations

import collections
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, CudaError, EdgesegError, ModelFormatError, ProviderError
from .base import Backend, TensorSpec, dims
from .cuda_runtime import CudaArrayView, CudaRuntime, DeviceBuffer, PinnedBuffer, Stream, load_cuda
from .engine_file import EngineFile, read_engine_file

log = logging.getLogger(__name__)

MIN_TENSORRT = (8, 5)  # the name-based I/O API (num_io_tensors, set_input_shape, execute_async_v3)
INSTALL_HINT = "pip install tensorrt on a machine with an NVIDIA GPU (on Jetson, TensorRT comes with JetPack)"


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


class TensorRTBackend(Backend):
    """A serialized TensorRT engine behind the Backend interface.

    One CUDA stream; a device buffer and a pinned host buffer per input and output, allocated on the first run
    and grown only when a larger input shape needs it. infer() returns views of the pinned output buffers: the
    next infer() overwrites them (copy what you keep); infer_on_device() leaves them in the GPU buffers, which the
    next run overwrites too. Not thread-safe: one backend per thread.
    """

    kind = "TensorRT"
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
            shape = tuple(d if d >= 0 else (lo if lo == hi else None)
                          for d, lo, hi in zip(engine_shape, low, high, strict=True))
        else:
            shape = engine_shape
        self.input = TensorSpec(self._input.name, shape, self._input.dtype)
        self.outputs = tuple(
            TensorSpec(b.name, tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(b.name)), b.dtype)
            for b in outputs
        )
        self._stream = self._cuda.stream()

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        cuda, stream = self._execute(batch)
        outputs = self._bindings[1:]
        for b in outputs:
            cuda.download(b.host, b.device, b.nbytes, stream)
        cuda.synchronize(stream)
        return [b.view for b in outputs]

    def _infer_on_device(self, batch: np.ndarray) -> list[CudaArrayView]:
        """The outputs left in the engine's GPU buffers (no download), each viewed as a CudaArrayView that keeps this
        backend alive: the GPU path reads them in place. The next run overwrites them (outputs_reused)."""
        cuda, stream = self._execute(batch)
        cuda.synchronize(stream)  # finished before any other stream (Numba's) reads them
        return [CudaArrayView(self, b.device.ptr, b.shape, b.dtype) for b in self._bindings[1:]]  # type: ignore

    def _execute(self, batch: np.ndarray) -> tuple[CudaRuntime, Stream]:
        """Uploads `batch` and queues the engine's run on the stream (not waited for)."""
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
        if self.profile is not None:  # a fixed engine's shape is the input's, which Backend.infer checked
            low, _, high = self.profile
            if not all(lo <= d <= hi for d, lo, hi in zip(shape, low, high, strict=True)):
                raise ConfigError(f"{name} accepts inputs from {dims(low)} to {dims(high)}, got {dims(shape)}: "
                                  "choose imgsz and batch within that range, or rebuild the engine with a wider "
                                  "profile")
            if not self._context.set_input_shape(self._input.name, shape):
                raise ConfigError(f"TensorRT refused input shape {dims(shape)} for {name} "
                                  f"({self._logger.take_errors() or 'outside the profile'})")
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

    def _close(self) -> None:
        """Frees the GPU and pinned memory, the stream, the context and the engine."""
        cuda, self._cuda = self._cuda, None
        assert cuda is not None  # __init__ sets it before anything that needs freeing
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


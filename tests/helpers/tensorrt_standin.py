"""A stand-in for TensorRT's Python API and for CUDA, so that the TensorRT backend and the engine builder run on a
machine without a GPU: the stand-in's "engine" is the ONNX model run by ONNX Runtime, and its "device memory" is
NumPy arrays.

The stand-in follows TensorRT's documented Python API (8.6 / 10.x names) as the code under test uses it; it checks
edgeseg's logic (buffers, shapes, profiles, metadata, calibration, caches, clean-up), not TensorRT itself.

Test modules import the fixtures they use by name from here (fake_gpu, no_tensorrt, tensorrt_must_not_load).
"""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgeseg.errors import ExportError, ProviderError
from edgeseg.model.backends import tensorrt as trt_backend
from edgeseg.model.backends.cuda_runtime import CudaRuntime, DeviceBuffer, PinnedBuffer, Stream
from edgeseg.model.backends.engine_file import write_sidecar
from edgeseg_export import tensorrt_engine as te
from edgeseg_export.tensorrt_engine import read_onnx_input


class FakeCuda(CudaRuntime):
    """'Device memory' is NumPy arrays keyed by made-up addresses; counts what is allocated and still live."""

    name = "fake-cuda"

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.live: set[int] = set()
        self.allocations = 0
        self.device = None
        self._next = 0x1000

    def _address(self) -> int:
        self._next += 0x1000
        return self._next

    def set_device(self, device: int) -> None:
        self.device = device

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        ptr = self._address()
        self.memory[ptr] = np.zeros(nbytes, np.uint8)
        self.live.add(ptr)
        self.allocations += 1
        return DeviceBuffer(ptr, nbytes)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        ptr = self._address()
        self.live.add(ptr)
        return PinnedBuffer(np.zeros(nbytes, np.uint8), ptr)

    def stream(self) -> Stream:
        ptr = self._address()
        self.live.add(ptr)
        return Stream(ptr)

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        self.memory[dst.ptr][:nbytes] = src.array[:nbytes]

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        dst.array[:nbytes] = self.memory[src.ptr][:nbytes]

    def synchronize(self, stream: Stream) -> None:
        assert stream.handle in self.live

    def free(self, item) -> None:
        ptr = item.handle if isinstance(item, Stream) else item.ptr
        self.live.remove(ptr)  # KeyError on a double free
        self.memory.pop(ptr, None)


FAKE_MAGIC = b"FAKE-TRT-ENGINE\n"


def fake_engine_bytes(onnx_bytes: bytes, profile=None) -> bytes:
    """A stand-in 'serialized engine': the ONNX model and its optimisation profile."""
    return FAKE_MAGIC + json.dumps({"profile": profile}).encode() + b"\n" + onnx_bytes


def make_fake_tensorrt(cuda: FakeCuda, version: str = "10.3.0") -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []  # what the builder was asked to do

    class Severity(enum.IntEnum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    trt.ILogger = ILogger
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.nptype = lambda dtype: dtype  # the stand-in's tensor types are NumPy types already

    class Engine:
        def __init__(self, session: ort.InferenceSession, profile):
            self.session, self.profile = session, profile
            self.tensors = [(i, "input") for i in session.get_inputs()] + [(o, "output") for o in session.get_outputs()]
            self.num_io_tensors = len(self.tensors)

        def _node(self, name):
            return next((n, mode) for n, mode in self.tensors if n.name == name)

        def get_tensor_name(self, i):
            return self.tensors[i][0].name

        def get_tensor_mode(self, name):
            return self._node(name)[1]

        def get_tensor_shape(self, name):
            return [d if isinstance(d, int) else -1 for d in self._node(name)[0].shape]

        def get_tensor_dtype(self, name):
            return np.float16 if self._node(name)[0].type == "tensor(float16)" else np.float32

        def get_tensor_profile_shape(self, name, index):
            assert index == 0 and self.profile is not None
            return [list(s) for s in self.profile]

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine: Engine):
            self.engine, self.shape, self.addresses = engine, None, {}

        def set_input_shape(self, name, shape):
            low, _, high = self.engine.profile
            if not all(a <= d <= b for d, a, b in zip(shape, low, high, strict=True)):
                return False
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if self.shape is None:  # a fixed-shape engine
                return self.engine.get_tensor_shape(name)
            inp = self.engine.session.get_inputs()[0]
            outputs = self.engine.session.run(None, {inp.name: np.zeros(self.shape, np.float32)})
            names = [o.name for o in self.engine.session.get_outputs()]
            return list(outputs[names.index(name)].shape)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            inp = self.engine.session.get_inputs()[0]
            shape = self.shape or tuple(self.engine.get_tensor_shape(inp.name))
            dtype = self.engine.get_tensor_dtype(inp.name)
            count = int(np.prod(shape))
            batch = cuda.memory[self.addresses[inp.name]][: count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)
            outputs = self.engine.session.run(None, {inp.name: batch})
            for node, out in zip(self.engine.session.get_outputs(), outputs, strict=True):
                raw = np.ascontiguousarray(out).view(np.uint8).ravel()
                cuda.memory[self.addresses[node.name]][: raw.size] = raw
            return True

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(FAKE_MAGIC):
                self.logger.log(Severity.ERROR, "1: [runtime.cpp::parsePlan] Error Code 1: Serialization failed")
                return None
            header, _, model = data[len(FAKE_MAGIC) :].partition(b"\n")
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            return Engine(session, json.loads(header)["profile"])

    trt.Runtime = Runtime

    class Profile:
        def set_shape(self, name, low, opt, high):
            self.shapes = [list(low), list(opt), list(high)]

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+timings"

    class Config:
        def __init__(self):
            self.int8_calibrator = None
            self.profile = None
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            trt.calls.append(("pool", pool, size))

        def set_flag(self, flag):
            trt.calls.append(("flag", flag))

        def add_optimization_profile(self, profile):
            self.profile = profile
            trt.calls.append(("profile", profile.shapes))

        def set_calibration_profile(self, profile):
            trt.calls.append(("calibration profile", profile.shapes))

        def create_timing_cache(self, data):
            trt.calls.append(("timing cache in", bytes(data)))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Network:
        def __init__(self, flags):
            trt.calls.append(("network flags", flags))
            self.onnx = None
            self.num_inputs = 0

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path):
            self.network.onnx = Path(path).read_bytes()
            self.network.num_inputs = 1
            return True

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calibrator = config.int8_calibrator
            if calibrator is not None:
                # calibration runs at the profile's opt shape, or the fixed input shape
                shape = config.profile.shapes[1] if config.profile else \
                    ort.InferenceSession(network.onnx, providers=["CPUExecutionProvider"]).get_inputs()[0].shape
                assert calibrator.get_batch_size() == shape[0]
                trt.calibration_batches = []
                if not calibrator.read_calibration_cache():
                    while (pointers := calibrator.get_batch(["images"])) is not None:
                        nbytes = int(np.prod(shape)) * 4
                        trt.calibration_batches.append(cuda.memory[pointers[0]][:nbytes].view(np.float32).copy())
                    calibrator.write_calibration_cache(b"scales")
            profile = config.profile.shapes if config.profile else None
            return fake_engine_bytes(network.onnx, profile)

    trt.Builder, trt.OnnxParser = Builder, OnnxParser

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    return trt


@pytest.fixture()
def fake_gpu(monkeypatch):
    """Installs the stand-in TensorRT and CUDA; returns (tensorrt module, FakeCuda)."""
    cuda = FakeCuda()
    trt = make_fake_tensorrt(cuda)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "_LOGGER", None)  # the logger is made from the tensorrt module it meets first
    monkeypatch.setattr(trt_backend, "load_cuda", lambda error=ProviderError: cuda)
    monkeypatch.setattr(te, "load_cuda", lambda error=ExportError: cuda)
    return trt, cuda


@pytest.fixture()
def no_tensorrt(monkeypatch):
    """TensorRT is not installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt fails, as where it is not installed


def engine_from_onnx(onnx_path: Path, engine: Path, profile=None) -> Path:
    """Writes a stand-in engine of `onnx_path` (with the optimisation profile [min, opt, max] when given) and its
    metadata sidecar, as the builder would; returns `engine`."""
    data = fake_engine_bytes(onnx_path.read_bytes(), profile)
    engine.write_bytes(data)
    _, _, _, metadata = read_onnx_input(onnx_path)
    write_sidecar(engine, data, metadata, {"tensorrt": "10.3.0"})
    return engine


@pytest.fixture()
def tensorrt_must_not_load(monkeypatch):
    """The engine builder fails the test if it imports TensorRT (its argument checks come first)."""

    def fail(*args, **kwargs):
        raise AssertionError("TensorRT was imported before the arguments were checked")

    monkeypatch.setattr(te, "import_tensorrt", fail)

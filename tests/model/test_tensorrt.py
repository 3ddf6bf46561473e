"""The TensorRT engine path without a GPU: argument checks, the errors when TensorRT or CUDA is missing, dispatch by
suffix, engine metadata, calibration batches, and the backend and builder logic run against a stand-in `tensorrt`
module (below) whose "engine" is the ONNX model run by ONNX Runtime, with NumPy arrays as "device memory".

The stand-in follows TensorRT's documented Python API (8.6 / 10.x names) as the code under test uses it; it checks
edgeseg's logic (buffers, shapes, profiles, metadata, calibration, caches, clean-up), not TensorRT itself.
"""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edgeseg import ConfigError, ExportError, ModelFormatError, ModelNotFoundError, ProviderError, Segmenter
from edgeseg.model.backends import open_backend
from edgeseg.model.backends import tensorrt as trt_backend
from edgeseg.model.backends.onnxruntime import OnnxRuntimeBackend
from edgeseg.model.backends.tensorrt import (
    CudaRuntime,
    DeviceBuffer,
    PinnedBuffer,
    Stream,
    TensorRTBackend,
    read_engine_file,
    sidecar_path,
    write_sidecar,
)
from edgeseg.config import ProviderOptions
from edgeseg.errors import CudaError, OutputError
from edgeseg.model.metadata import ModelMetadata
from edgeseg_export import tensorrt_engine as te
from edgeseg_export.tensorrt_engine import (
    CalibrationBatches,
    build_engine,
    parse_shape,
    plan_engine,
    read_calibration_cache,
    read_onnx_input,
    write_calibration_cache,
)

# --- stand-ins for CUDA and TensorRT ---------------------------------------------------------------------------


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
            if not all(a <= d <= b for d, a, b in zip(shape, low, high)):
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
            for node, out in zip(self.engine.session.get_outputs(), outputs):
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
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt fails, as where it is not installed


def _engine_from_onnx(onnx_path: Path, engine: Path, profile=None) -> Path:
    data = fake_engine_bytes(onnx_path.read_bytes(), profile)
    engine.write_bytes(data)
    _, _, _, metadata = read_onnx_input(onnx_path)
    write_sidecar(engine, data, metadata, {"tensorrt": "10.3.0"})
    return engine


# --- without TensorRT ------------------------------------------------------------------------------------------


def test_build_engine_without_tensorrt_says_so_and_writes_nothing(shapes_onnx, tmp_path, no_tensorrt):
    with pytest.raises(ExportError) as info:
        build_engine(shapes_onnx, tmp_path / "m.engine", half=True)
    message = str(info.value)
    assert "TensorRT is not installed" in message and "pip install tensorrt" in message and "JetPack" in message
    assert "--format onnx" in message and "TensorRT provider" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_backend_without_tensorrt_says_so(tmp_path, no_tensorrt):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(ProviderError, match="TensorRT is not installed: pip install tensorrt.*TensorRT provider"):
        Segmenter(engine)


def test_missing_engine_is_model_not_found(tmp_path, no_tensorrt):
    with pytest.raises(ModelNotFoundError, match="not found"):
        Segmenter(tmp_path / "nope.engine")


def test_no_cuda_binding_is_a_clear_error(monkeypatch):
    for module in ("cuda.bindings.runtime", "cuda.cudart", "cupy.cuda.runtime", "torch"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ProviderError, match="no CUDA binding.*cuda-python, cupy, torch.*pip install cuda-python"):
        trt_backend.load_cuda()
    with pytest.raises(ExportError, match="no CUDA binding"):
        trt_backend.load_cuda(ExportError)


def test_cuda_python_failure_names_the_call():
    runtime = pytest.importorskip("cuda.bindings.runtime")
    status, count = runtime.cudaGetDeviceCount()
    if status == runtime.cudaError_t.cudaSuccess and count > 0:
        pytest.skip("this machine has a GPU")
    cuda = trt_backend.load_cuda()
    assert cuda.name == "cuda-python"
    with pytest.raises(CudaError, match=r"CUDA call cudaSetDevice\(0\) failed: cudaError"):
        cuda.set_device(0)


# --- dispatch --------------------------------------------------------------------------------------------------


def test_open_backend_dispatches_by_suffix(shapes_onnx, tmp_path, no_tensorrt):
    with open_backend(shapes_onnx) as backend:
        assert isinstance(backend, OnnxRuntimeBackend)
    for name in ("m.engine", "m.plan", "M.PLAN"):
        (tmp_path / name).write_bytes(b"\x00" * 16)
        with pytest.raises(ProviderError, match="TensorRT is not installed"):
            open_backend(tmp_path / name)
    for name in ("m.pt", "m.tflite", "model"):
        (tmp_path / name).write_bytes(b"\x00" * 16)
        with pytest.raises(ModelFormatError, match=r"unknown model file type.*\.onnx.*\.engine.*\.plan"):
            open_backend(tmp_path / name)


@pytest.mark.parametrize("providers", [["cpu"], ["cuda"], ["tensorrt", "cpu"], ["tensorrt:x"]])
def test_engine_runs_on_tensorrt_only(tmp_path, providers, no_tensorrt):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 16)
    with pytest.raises(ProviderError, match="runs on TensorRT only"):
        open_backend(engine, providers)


# --- argument checks (all before TensorRT is imported) ---------------------------------------------------------


@pytest.fixture()
def tensorrt_must_not_load(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("TensorRT was imported before the arguments were checked")

    monkeypatch.setattr(te, "import_tensorrt", fail)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(out="m.onnx"), r"must end in \.engine or \.plan"),
    (dict(min_shape=(1, 3, 640, 640), opt_shape=(1, 3, 640, 640), max_shape=(1, 3, 640, 640)),
     "fixed input 1x3x640x640"),
    (dict(int8=True), "int8 needs calibration images"),
    (dict(calib_dir="."), "only used with int8"),
    (dict(workspace_gib=0), "workspace_gib"),
    (dict(workspace_gib="4"), "workspace_gib"),
    (dict(calib_images=0, int8=True, calib_dir="."), "calib_images"),
    (dict(half="yes"), "half must be True or False"),
])
def test_bad_build_arguments_on_a_fixed_model(shapes_onnx, tmp_path, tensorrt_must_not_load, kwargs, message):
    out = tmp_path / kwargs.pop("out", "m.engine")
    with pytest.raises(ExportError, match=message):
        build_engine(shapes_onnx, out, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("shapes", "message"), [
    ({}, "dynamic input .*give min_shape, opt_shape and max_shape.*missing: min_shape, opt_shape, max_shape"),
    (dict(opt_shape="1x3x320x320"), "missing: min_shape, max_shape"),
    (dict(min_shape=(2, 3, 320, 320), opt_shape=(1, 3, 320, 320), max_shape=(4, 3, 320, 320)), "grow from min"),
    (dict(min_shape=(1, 3, 320, 320), opt_shape=(1, 3, 330, 320), max_shape=(4, 3, 640, 640)),
     "multiples of the stride 32"),
    (dict(min_shape=(1, 4, 320, 320), opt_shape=(1, 3, 320, 320), max_shape=(4, 3, 640, 640)),
     "dimension 1 .* fixed at 3"),
    (dict(min_shape="1x3x320", opt_shape=(1, 3, 320, 320), max_shape=(4, 3, 640, 640)), "four positive integers"),
    (dict(min_shape=(0, 3, 320, 320), opt_shape=(1, 3, 320, 320), max_shape=(4, 3, 640, 640)),
     "four positive integers"),
])
def test_bad_profiles_on_a_dynamic_model(shapes_dynamic_onnx, tmp_path, tensorrt_must_not_load, shapes, message):
    with pytest.raises(ExportError, match=message):
        build_engine(shapes_dynamic_onnx, tmp_path / "m.engine", **shapes)


def test_a_good_profile_is_planned(shapes_dynamic_onnx, tmp_path):
    plan = plan_engine(shapes_dynamic_onnx, tmp_path / "m.plan", half=True, min_shape="1x3x320x320",
                       opt_shape="2,3,320,480", max_shape=[4, 3, 640, 640])
    assert plan.profile == ((1, 3, 320, 320), (2, 3, 320, 480), (4, 3, 640, 640))
    assert plan.input_shape == (None, 3, None, None) and plan.input_name == "images"
    assert plan.calib_shape == (2, 3, 320, 480) and plan.precision == "fp16"
    assert plan.metadata["task"] == "segment" and plan.stride == 32


def test_int8_calibration_folder_checks(shapes_dynamic_onnx, val_images, tmp_path, tensorrt_must_not_load):
    shapes = dict(min_shape=(1, 3, 320, 320), opt_shape=(4, 3, 320, 320), max_shape=(4, 3, 320, 320))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="no images in calibration folder"):
        build_engine(shapes_dynamic_onnx, tmp_path / "m.engine", int8=True, calib_dir=empty, **shapes)
    with pytest.raises(ExportError, match="batches of 4 .*holds only 3 images"):
        build_engine(shapes_dynamic_onnx, tmp_path / "m.engine", int8=True, calib_dir=val_images[0].parent,
                     calib_images=3, **shapes)
    plan = plan_engine(shapes_dynamic_onnx, tmp_path / "m.engine", int8=True, calib_dir=val_images[0].parent,
                       calib_images=10, **shapes)
    assert len(plan.calib_files) == 10 and plan.calib_cache.name == "m.engine.calib" and plan.precision == "int8"


def test_unwritable_outputs_fail_before_the_build(shapes_onnx, tmp_path, tensorrt_must_not_load):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        build_engine(shapes_onnx, blocker / "m.engine")
    with pytest.raises(ExportError, match="timing_cache must be a file"):
        build_engine(shapes_onnx, tmp_path / "m.engine", timing_cache=tmp_path)
    with pytest.raises(ModelNotFoundError):
        build_engine(tmp_path / "nope.onnx", tmp_path / "m.engine")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelFormatError, match="cannot read .* as an ONNX model"):
        build_engine(tmp_path / "bad.onnx", tmp_path / "m.engine")


def test_parse_shape():
    assert parse_shape("1x3x640x640") == parse_shape("1, 3, 640, 640") == parse_shape([1, 3, 640, 640]) \
        == (1, 3, 640, 640)
    assert parse_shape(None) is None
    for bad in ("1x3x640", "axbxcxd", (1, 3, 640, 640.0), (1, 3, 640, True), "1x3x640x-1"):
        with pytest.raises(ExportError):
            parse_shape(bad)


# --- engine metadata -------------------------------------------------------------------------------------------


def test_sidecar_round_trip_keeps_the_onnx_metadata(shapes_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    data = b"engine bytes"
    engine.write_bytes(data)
    _, _, _, metadata = read_onnx_input(shapes_onnx)
    path = write_sidecar(engine, data, metadata, {"tensorrt": "10.3.0", "precision": "fp16"})
    assert path == sidecar_path(engine) == tmp_path / "m.engine.json"
    read = read_engine_file(engine)
    session = ort.InferenceSession(str(shapes_onnx), providers=["CPUExecutionProvider"])
    assert read.metadata == dict(session.get_modelmeta().custom_metadata_map)  # what the ONNX backend reports
    assert read.build["precision"] == "fp16" and read.metadata_source == "sidecar" and bytes(read.data) == data
    meta = ModelMetadata.from_strings(read.metadata)
    assert meta.names == {0: "circle", 1: "rectangle", 2: "triangle", 3: "hexagon", 4: "star"}
    assert meta.imgsz == (640, 640) and meta.stride == 32 and meta.task == "segment" and meta.end2end is False


def test_sidecar_of_another_build_or_broken_is_an_error(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"new engine")
    write_sidecar(engine, b"old engine", {"task": "segment"})
    with pytest.raises(ModelFormatError, match="belongs to another build"):
        read_engine_file(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ModelFormatError, match="cannot read the engine metadata"):
        read_engine_file(engine)
    sidecar_path(engine).write_text('{"names": "x"}')
    with pytest.raises(ModelFormatError, match="not an edgeseg engine metadata file"):
        read_engine_file(engine)
    sidecar_path(engine).unlink()
    assert read_engine_file(engine).metadata == {}  # no sidecar: the Segmenter goes by the output shapes


def test_ultralytics_engine_header_is_read():
    meta = {"names": {"0": "person", "1": "bicycle"}, "imgsz": [640, 480], "stride": 32, "task": "segment",
            "end2end": False, "batch": 1, "args": {"nms": False, "dynamic": False}}
    text = json.dumps(meta).encode()
    blob = len(text).to_bytes(4, "little", signed=True) + text + b"ftrt-engine-bytes"
    parsed = trt_backend._ultralytics_header(memoryview(blob))
    assert parsed is not None and parsed[1] == len(text)
    m = ModelMetadata.from_strings(parsed[0])
    assert m.names == {0: "person", 1: "bicycle"} and m.imgsz == (640, 480) and m.stride == 32
    assert m.task == "segment" and m.end2end is False and m.batch == 1
    assert trt_backend._ultralytics_header(memoryview(b"ftrt" + b"\x00" * 100)) is None


# --- calibration -----------------------------------------------------------------------------------------------


def test_calibration_batches_are_the_runtime_letterbox(val_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    files = [val_images[0], broken, *val_images[1:5]]  # 5 readable: two batches of 2, one left over
    batches = CalibrationBatches(files, (2, 3, 640, 640), np.float32)
    assert len(batches) == 3  # counted from the files; the broken one is found while reading
    arrays = [b.copy() for b in batches]
    assert len(arrays) == 2 and batches.skipped == [str(broken)]
    assert all(a.shape == (2, 3, 640, 640) and a.dtype == np.float32 for a in arrays)
    # 320x320 source into 640x640: a 2x resize filling the frame, RGB, /255 -- no padding
    image = cv2.imread(str(val_images[0]))
    expected = cv2.resize(image, (640, 640), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(arrays[0][0], expected, atol=1e-6)
    half = next(iter(CalibrationBatches(val_images[:1], (1, 3, 320, 480), np.float16)))
    assert half.dtype == np.float16 and half.shape == (1, 3, 320, 480)
    assert np.allclose(half[0, :, :, :80], 114 / 255, atol=1e-3)  # letterbox padding at the sides


def test_calibration_cache_is_tied_to_its_fingerprint(tmp_path):
    path = tmp_path / "m.engine.calib"
    assert read_calibration_cache(path, "abc") is None
    write_calibration_cache(path, "abc", b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n")
    assert read_calibration_cache(path, "abc") == b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"
    assert read_calibration_cache(path, "other") is None


# --- the backend on the stand-in -------------------------------------------------------------------------------


def test_engine_gives_the_same_results_as_the_onnx_model(shapes_onnx, val_images, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    engine = _engine_from_onnx(shapes_onnx, tmp_path / "shapes.engine")
    images = [str(p) for p in val_images[:3]]
    reference = Segmenter(shapes_onnx)(images)
    with Segmenter(engine) as seg:
        assert seg.providers == ("TensorRT",) and seg.names == reference[0].names
        assert seg.imgsz == (640, 640) and not seg.end2end
        results = seg(images)
        backend = seg.backend
        assert cuda.allocations == 3  # input and two outputs, once
        seg(images)
        assert cuda.allocations == 3  # reused
    assert not cuda.live  # close() freed every buffer and the stream
    backend.close()  # twice is fine
    for a, b in zip(reference, results):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1e-3)
        np.testing.assert_array_equal(a.boxes.cls, b.boxes.cls)
        np.testing.assert_array_equal(a.masks.data, b.masks.data)
    with pytest.raises(ProviderError, match="closed"):
        backend.infer(np.zeros((1, 3, 640, 640), np.float32))


def test_infer_on_device_leaves_the_outputs_in_the_engines_buffers(shapes_onnx, tmp_path, fake_gpu, monkeypatch):
    _, cuda = fake_gpu
    engine = _engine_from_onnx(shapes_onnx, tmp_path / "shapes.engine")
    downloads = []
    monkeypatch.setattr(cuda, "download", lambda *args: downloads.append(args))  # must not be called
    batch = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    want = ort.InferenceSession(str(shapes_onnx), providers=["CPUExecutionProvider"]).run(None, {"images": batch})
    with TensorRTBackend(engine, device_id=0) as backend:
        assert backend.outputs_on_gpu and backend.outputs_reused and backend.binding_device == ("cuda", 0)
        outputs = backend.infer_on_device(batch)
        assert not downloads
        for out, binding, expected in zip(outputs, backend._bindings[1:], want):
            interface = out.__cuda_array_interface__
            assert interface["data"] == (binding.device.ptr, False) and interface["version"] == 3
            assert interface["shape"] == expected.shape and interface["typestr"] == "<f4"
            in_gpu = cuda.memory[binding.device.ptr][: expected.nbytes].view(np.float32).reshape(expected.shape)
            np.testing.assert_allclose(in_gpu, expected, rtol=1e-5, atol=1e-5)
        assert [o.__cuda_array_interface__["data"] for o in backend.infer_on_device(batch)] == [
            o.__cuda_array_interface__["data"] for o in outputs]  # the same buffers: the next run overwrites them


def test_engine_without_sidecar_infers_from_shapes(shapes_onnx, tmp_path, fake_gpu):
    engine = _engine_from_onnx(shapes_onnx, tmp_path / "shapes.plan")
    sidecar_path(engine).unlink()
    with Segmenter(engine) as seg:
        assert seg.names == {i: f"class{i}" for i in range(5)} and seg.num_classes == 5


def test_dynamic_engine_profile_and_buffer_reuse(shapes_dynamic_onnx, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    profile = [[1, 3, 320, 320], [2, 3, 320, 320], [4, 3, 320, 320]]
    engine = _engine_from_onnx(shapes_dynamic_onnx, tmp_path / "dyn.engine", profile)
    backend = TensorRTBackend(engine)
    try:
        assert backend.input.shape == (None, 3, 320, 320)  # the profile pins height and width
        assert backend.profile == tuple(tuple(s) for s in profile)
        session = ort.InferenceSession(str(shapes_dynamic_onnx), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        for n, allocations in ((2, 3), (1, 3), (4, 6), (2, 6)):  # grown once for 4, then reused
            batch = rng.random((n, 3, 320, 320), dtype=np.float32)
            outputs = backend.infer(batch)
            assert cuda.allocations == allocations
            for got, want in zip(outputs, session.run(None, {"images": batch})):
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        with pytest.raises(ConfigError, match="accepts inputs from 1x3x320x320 to 4x3x320x320, got 8x3x320x320"):
            backend.infer(np.zeros((8, 3, 320, 320), np.float32))
        with pytest.raises(ConfigError, match="float32"):
            backend.infer(np.zeros((1, 3, 320, 320), np.float64))
    finally:
        backend.close()
    assert not cuda.live
    with Segmenter(engine, batch=4) as seg:  # the profile's fixed size, not 640
        assert seg.imgsz == (320, 320) and seg.batch_size == 4


def test_not_an_engine_is_a_format_error(tmp_path, fake_gpu):
    _, cuda = fake_gpu
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 256)
    with pytest.raises(ModelFormatError, match="cannot load m.engine as a TensorRT engine .*Serialization failed"):
        Segmenter(engine)
    assert not cuda.live


def test_engine_device_from_provider_or_options(shapes_onnx, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    engine = _engine_from_onnx(shapes_onnx, tmp_path / "m.engine")
    with open_backend(engine, ["tensorrt:1"]) as backend:
        assert backend.device_id == 1 and cuda.device == 1
    with open_backend(engine, "auto", ProviderOptions(device_id=2)) as backend:
        assert backend.device_id == 2
    with pytest.raises(ProviderError, match="asks for GPU 1 but device_id is 2"):
        open_backend(engine, ["trt:1"], ProviderOptions(device_id=2))


# --- the builder on the stand-in -------------------------------------------------------------------------------


def test_build_fp16_engine_with_timing_cache(shapes_onnx, val_images, tmp_path, fake_gpu):
    trt, _ = fake_gpu
    cache = tmp_path / "caches" / "timing.cache"
    out = build_engine(shapes_onnx, tmp_path / "engines" / "m.engine", half=True, workspace_gib=2,
                       timing_cache=cache)
    assert out == tmp_path / "engines" / "m.engine" and out.is_file()
    assert ("flag", "FP16") in trt.calls and ("pool", "WORKSPACE", 2 << 30) in trt.calls
    assert ("network flags", 0) in trt.calls  # TensorRT 10: no explicit-batch flag
    assert cache.read_bytes() == b"+timings"
    build_engine(shapes_onnx, out, timing_cache=cache)  # the second build starts from the saved cache
    assert ("timing cache in", b"+timings") in trt.calls
    assert read_engine_file(out).build["precision"] == "fp32"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.engine", "m.engine.json"]  # no temporary files
    reference = Segmenter(shapes_onnx)(str(val_images[0]))[0]
    with Segmenter(out) as seg:
        r = seg(str(val_images[0]))[0]
    np.testing.assert_allclose(r.boxes.xyxy, reference.boxes.xyxy, atol=1e-3)
    assert r.names == reference.names


def test_build_int8_engine_calibrates_then_reuses_the_cache(shapes_dynamic_onnx, val_images, tmp_path, fake_gpu,
                                                           monkeypatch):
    trt, cuda = fake_gpu
    monkeypatch.setattr(trt, "__version__", "8.6.1")  # TensorRT 8: explicit-batch flag and a calibration profile
    shapes = dict(min_shape=(1, 3, 320, 320), opt_shape=(2, 3, 320, 320), max_shape=(4, 3, 320, 320))
    opt = shapes["opt_shape"]
    out = build_engine(shapes_dynamic_onnx, tmp_path / "m.engine", int8=True, half=True, calib_dir=val_images[0].parent,
                       calib_images=5, **shapes)
    assert len(trt.calibration_batches) == 2  # 5 images: two batches of 2, the fifth left out
    files = plan_engine(shapes_dynamic_onnx, out, int8=True, calib_dir=val_images[0].parent, calib_images=5,
                        **shapes).calib_files
    expected = next(iter(CalibrationBatches(files[:2], opt, np.float32)))
    np.testing.assert_array_equal(trt.calibration_batches[0], expected.ravel())
    assert ("flag", "INT8") in trt.calls and ("flag", "FP16") in trt.calls
    assert ("network flags", 1) in trt.calls
    assert ("calibration profile", [list(opt)] * 3) in trt.calls
    assert ("profile", [list(s) for s in shapes.values()]) in trt.calls
    assert read_engine_file(out).build["precision"] == "int8+fp16"
    assert (tmp_path / "m.engine.calib").read_bytes().endswith(b"\nscales") and not cuda.live
    trt.calibration_batches = None
    build_engine(shapes_dynamic_onnx, out, int8=True, calib_dir=val_images[0].parent, calib_images=5, **shapes)
    assert trt.calibration_batches == []  # the cache was read: no batch was asked for


def test_calibration_failure_surfaces_after_the_build(shapes_onnx, val_images, tmp_path, fake_gpu, monkeypatch):
    trt, cuda = fake_gpu

    def broken_upload(*args):
        raise CudaError("CUDA call cudaMemcpyAsync(host to device) failed: cudaErrorIllegalAddress")

    monkeypatch.setattr(cuda, "upload", broken_upload)
    with pytest.raises(CudaError, match="cudaMemcpyAsync"):
        build_engine(shapes_onnx, tmp_path / "m.engine", int8=True, calib_dir=val_images[0].parent, calib_images=2)
    assert not (tmp_path / "m.engine").exists() and not cuda.live


def test_tensorrt_11_cannot_take_precision_flags(shapes_onnx, tmp_path, fake_gpu, monkeypatch):
    trt, _ = fake_gpu
    monkeypatch.setattr(trt, "__version__", "11.0.0")
    with pytest.raises(ExportError, match="strongly typed"):
        build_engine(shapes_onnx, tmp_path / "m.engine", half=True)


def test_old_tensorrt_is_refused(shapes_onnx, tmp_path, fake_gpu, monkeypatch):
    trt, _ = fake_gpu
    monkeypatch.setattr(trt, "__version__", "8.4.3")
    with pytest.raises(ExportError, match="TensorRT 8.4.3 is too old: edgeseg needs 8.5"):
        build_engine(shapes_onnx, tmp_path / "m.engine")


def test_tensorrt_without_a_usable_gpu(shapes_onnx, tmp_path, fake_gpu, monkeypatch):
    trt, cuda = fake_gpu

    def no_gpu(self, logger):
        logger.log(trt.ILogger.Severity.ERROR, "CUDA initialization failure with error: 35")
        raise TypeError("pybind11::init(): factory function returned nullptr")

    monkeypatch.setattr(trt.Runtime, "__init__", no_gpu)
    monkeypatch.setattr(trt.Builder, "__init__", no_gpu)
    engine = _engine_from_onnx(shapes_onnx, tmp_path / "m.engine")
    with pytest.raises(CudaError, match="TensorRT could not start: CUDA initialization failure with error: 35"):
        Segmenter(engine)
    assert not cuda.live
    with pytest.raises(ExportError, match="could not start a builder: CUDA initialization failure"):
        build_engine(shapes_onnx, tmp_path / "other.engine")

"""The TensorRT engine path without a GPU: argument checks, the errors when TensorRT or CUDA is missing, dispatch by
suffix, engine metadata, calibration batches, and the backend and builder logic run against the stand-in `tensorrt`
module of tests/helpers/tensorrt_standin.py, whose "engine" is the ONNX model run by ONNX Runtime, with NumPy arrays
as "device memory".
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edgeseg import ConfigError, ExportError, ModelFormatError, ModelNotFoundError, ProviderError, Segmenter
from edgeseg.config import ProviderOptions
from edgeseg.errors import CudaError, OutputError
from edgeseg.model.backends import cuda_runtime, engine_file, open_backend
from edgeseg.model.backends.engine_file import read_engine_file, sidecar_path, write_sidecar
from edgeseg.model.backends.onnxruntime import OnnxRuntimeBackend
from edgeseg.model.backends.tensorrt import TensorRTBackend
from edgeseg.model.metadata import ModelMetadata
from edgeseg_export.tensorrt_engine import (
    CalibrationBatches,
    build_engine,
    parse_shape,
    plan_engine,
    read_calibration_cache,
    read_onnx_input,
    write_calibration_cache,
)
from tests.helpers import tensorrt_standin
from tests.helpers.tensorrt_standin import engine_from_onnx

# the stand-in's fixtures, requested by name below
fake_gpu, no_tensorrt = tensorrt_standin.fake_gpu, tensorrt_standin.no_tensorrt
tensorrt_must_not_load = tensorrt_standin.tensorrt_must_not_load

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
        cuda_runtime.load_cuda()
    with pytest.raises(ExportError, match="no CUDA binding"):
        cuda_runtime.load_cuda(ExportError)


def test_cuda_python_failure_names_the_call():
    runtime = pytest.importorskip("cuda.bindings.runtime")
    status, count = runtime.cudaGetDeviceCount()
    if status == runtime.cudaError_t.cudaSuccess and count > 0:
        pytest.skip("this machine has a GPU")
    cuda = cuda_runtime.load_cuda()
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
    parsed = engine_file._ultralytics_header(memoryview(blob))
    assert parsed is not None and parsed[1] == len(text)
    m = ModelMetadata.from_strings(parsed[0])
    assert m.names == {0: "person", 1: "bicycle"} and m.imgsz == (640, 480) and m.stride == 32
    assert m.task == "segment" and m.end2end is False and m.batch == 1
    assert engine_file._ultralytics_header(memoryview(b"ftrt" + b"\x00" * 100)) is None


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
    engine = engine_from_onnx(shapes_onnx, tmp_path / "shapes.engine")
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
    for a, b in zip(reference, results, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1e-3)
        np.testing.assert_array_equal(a.boxes.cls, b.boxes.cls)
        np.testing.assert_array_equal(a.masks.data, b.masks.data)
    with pytest.raises(ProviderError, match="closed"):
        backend.infer(np.zeros((1, 3, 640, 640), np.float32))


def test_infer_on_device_leaves_the_outputs_in_the_engines_buffers(shapes_onnx, tmp_path, fake_gpu, monkeypatch):
    _, cuda = fake_gpu
    engine = engine_from_onnx(shapes_onnx, tmp_path / "shapes.engine")
    downloads = []
    monkeypatch.setattr(cuda, "download", lambda *args: downloads.append(args))  # must not be called
    batch = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    want = ort.InferenceSession(str(shapes_onnx), providers=["CPUExecutionProvider"]).run(None, {"images": batch})
    with TensorRTBackend(engine, device_id=0) as backend:
        assert backend.outputs_on_gpu and backend.outputs_reused and backend.binding_device == ("cuda", 0)
        outputs = backend.infer_on_device(batch)
        assert not downloads
        for out, binding, expected in zip(outputs, backend._bindings[1:], want, strict=True):
            interface = out.__cuda_array_interface__
            assert interface["data"] == (binding.device.ptr, False) and interface["version"] == 3
            assert interface["shape"] == expected.shape and interface["typestr"] == "<f4"
            in_gpu = cuda.memory[binding.device.ptr][: expected.nbytes].view(np.float32).reshape(expected.shape)
            np.testing.assert_allclose(in_gpu, expected, rtol=1e-5, atol=1e-5)
        assert [o.__cuda_array_interface__["data"] for o in backend.infer_on_device(batch)] == [
            o.__cuda_array_interface__["data"] for o in outputs]  # the same buffers: the next run overwrites them


def test_engine_without_sidecar_infers_from_shapes(shapes_onnx, tmp_path, fake_gpu):
    engine = engine_from_onnx(shapes_onnx, tmp_path / "shapes.plan")
    sidecar_path(engine).unlink()
    with Segmenter(engine) as seg:
        assert seg.names == {i: f"class{i}" for i in range(5)} and seg.num_classes == 5


def test_dynamic_engine_profile_and_buffer_reuse(shapes_dynamic_onnx, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    profile = [[1, 3, 320, 320], [2, 3, 320, 320], [4, 3, 320, 320]]
    engine = engine_from_onnx(shapes_dynamic_onnx, tmp_path / "dyn.engine", profile)
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
            for got, want in zip(outputs, session.run(None, {"images": batch}), strict=True):
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
    engine = engine_from_onnx(shapes_onnx, tmp_path / "m.engine")
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
    engine = engine_from_onnx(shapes_onnx, tmp_path / "m.engine")
    with pytest.raises(CudaError, match="TensorRT could not start: CUDA initialization failure with error: 35"):
        Segmenter(engine)
    assert not cuda.live
    with pytest.raises(ExportError, match="could not start a builder: CUDA initialization failure"):
        build_engine(shapes_onnx, tmp_path / "other.engine")

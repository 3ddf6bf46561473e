"""The OpenVINO backend: the same objects as ONNX Runtime on the shared validation images, from an .onnx file, an IR
and Ultralytics' _openvino_model folder; metadata from each; its settings (device, threads, hint, cache); one-line
errors for a missing .bin, a model that does not segment and a device OpenVINO lacks."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, ProviderError, Segmenter
from edgeseg.config import PredictConfig, ProviderOptions
from edgeseg.errors import ModelFormatError, ModelNotFoundError, NotSegmentationModelError
from edgeseg.model.backends import open_backend
from edgeseg.model.backends.openvino import OpenVinoBackend, check_device
from edgeseg_export.verify import match
from tests.helpers.common import SHAPES_PT, edgeseg_cli, mask_iou

ov = pytest.importorskip("openvino")

NAMES = {0: "circle", 1: "rectangle", 2: "triangle", 3: "hexagon", 4: "star"}
GOOD = np.zeros((1, 3, 640, 640), np.float32)
# the parity floors of the issue: every object found by both, boxes and masks alike
MIN_BOX_IOU, MIN_MASK_IOU = 0.99, 0.98


def _ir(onnx_path: Path, folder: Path) -> Path:
    """`onnx_path` converted to an FP32 IR in `folder` (the ONNX metadata goes into its rt_info)."""
    xml = folder / f"{onnx_path.stem}.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), xml, compress_to_fp16=False)
    return xml


@pytest.fixture(scope="session")
def shapes_ir(shapes_onnx, tmp_path_factory) -> Path:
    return _ir(shapes_onnx, tmp_path_factory.mktemp("ir"))


@pytest.fixture(scope="session")
def ultralytics_folder(tmp_path_factory) -> Path:
    """Ultralytics' own OpenVINO export of the shared checkpoint, at the shared ONNX model's 640."""
    ultralytics = pytest.importorskip("ultralytics")
    folder = tmp_path_factory.mktemp("ultralytics-openvino")
    checkpoint = Path(shutil.copy(SHAPES_PT, folder / SHAPES_PT.name))
    return Path(ultralytics.YOLO(str(checkpoint)).export(format="openvino", imgsz=640, verbose=False))


@pytest.fixture(scope="session")
def reference(shapes_onnx, val_images) -> dict[str, object]:
    """ONNX Runtime's results on every validation image, by file name."""
    with Segmenter(shapes_onnx, backend="onnxruntime") as seg:
        return {Path(r.path).name: r for r in seg.predict([str(p) for p in val_images])}


def _assert_same_objects(seg: Segmenter, reference: dict, images: list[Path]) -> None:
    compared = 0
    for ours in seg.predict([str(p) for p in images]):
        ref = reference[Path(ours.path).name]
        assert len(ours) == len(ref), ours.path
        pairs = match(ref.boxes.xyxy, ref.boxes.cls, ours.boxes.xyxy, ours.boxes.cls)
        assert len(pairs) == len(ref), ours.path  # the same objects, class for class
        for i, j, box_iou in pairs:
            assert box_iou >= MIN_BOX_IOU, (ours.path, i)
            assert mask_iou(ref.masks.dense(i), ours.masks.dense(j)) >= MIN_MASK_IOU, (ours.path, i)
        compared += len(pairs)
    assert compared > len(images)  # the images hold objects: the comparison compared something


def test_an_onnx_file_on_openvino_finds_what_onnxruntime_finds(shapes_onnx, val_images, reference):
    with Segmenter(shapes_onnx, backend="openvino") as seg:
        assert seg.providers == ("OpenVINO:CPU",) and seg.names == NAMES and seg.imgsz == (640, 640)
        _assert_same_objects(seg, reference, val_images)


@pytest.mark.parametrize("kind", ["ir", "folder"])
def test_an_ir_and_ultralytics_folder_find_what_onnxruntime_finds(kind, request, val_images, reference):
    model = request.getfixturevalue("shapes_ir" if kind == "ir" else "ultralytics_folder")
    with Segmenter(model) as seg:  # picked by suffix (.xml) or as a folder
        assert isinstance(seg.backend, OpenVinoBackend)
        assert seg.names == NAMES and seg.imgsz == (640, 640) and seg.stride == 32
        _assert_same_objects(seg, reference, val_images[::3])


def test_metadata_comes_from_rt_info_metadata_yaml_or_the_labels(shapes_ir, ultralytics_folder, tmp_path):
    with open_backend(shapes_ir) as backend:  # ONNX metadata_props, carried into rt_info by convert_model
        assert backend.metadata["task"] == "segment" and eval(backend.metadata["names"]) == NAMES
    with open_backend(ultralytics_folder) as backend:  # Ultralytics' metadata.yaml
        assert backend.metadata["imgsz"] == "[640, 640]" and backend.metadata["task"] == "segment"
    bare = Path(shutil.copytree(ultralytics_folder, tmp_path / "bare"))
    (bare / "metadata.yaml").unlink()
    with Segmenter(next(bare.glob("*.xml"))) as seg:  # Ultralytics' rt_info: the class names alone
        assert seg.names == NAMES


def test_settings_reach_the_compiled_model(shapes_onnx, tmp_path):
    cache = tmp_path / "cache"
    options = ProviderOptions(cpu_threads=1, openvino_cache=str(cache), openvino_hint="throughput")
    with open_backend(shapes_onnx, options=options, backend="openvino") as backend:
        compiled = backend._compiled
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert str(compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"  # f32: ORT's results
    assert any(cache.iterdir())  # the compiled model, which the next start loads instead of compiling
    with open_backend(shapes_onnx, options=options, backend="openvino") as again:
        assert again.infer(GOOD)[0].shape == (1, 41, 8400)


def test_infer_is_thread_safe_and_infer_many_keeps_the_order(shapes_onnx, val_images):
    with Segmenter(shapes_onnx, backend="openvino", provider_options={"openvino_hint": "throughput"}) as seg:
        batches = [seg.preprocess([cv2.imread(str(p))])[0].copy() for p in val_images[:6]]
        alone = [seg.backend.infer(b) for b in batches]
        threaded: dict[int, list] = {}
        workers = [threading.Thread(target=lambda k=k: threaded.__setitem__(k, seg.backend.infer(batches[k])))
                   for k in range(len(batches))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for k, outputs in enumerate(seg.backend.infer_many(batches, jobs=3)):
            for a, b, c in zip(alone[k], threaded[k], outputs, strict=True):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(a, c)
        first = seg.backend.infer(batches[0])
        seg.backend.infer(batches[1])  # the next run writes elsewhere: outputs the caller holds stay its own
        np.testing.assert_array_equal(first[0], alone[0][0])


def test_a_closed_or_misfed_backend_fails_as_every_backend_does(shapes_onnx):
    backend = open_backend(shapes_onnx, backend="openvino")
    with pytest.raises(ConfigError, match=r"takes a 1x3x640x640 float32 batch"):
        backend.infer(GOOD.astype(np.float64))
    backend.close()
    backend.close()
    with pytest.raises(ProviderError, match="the OpenVINO backend of shapes11n-seg.onnx is closed"):
        backend.infer(GOOD)


def test_a_missing_bin_a_lone_bin_and_an_empty_folder_say_what_to_do(shapes_ir, tmp_path):
    xml = Path(shutil.copy(shapes_ir, tmp_path / "m.xml"))
    with pytest.raises(ModelNotFoundError, match=r"m\.xml is an OpenVINO IR whose weights file m\.bin is missing"):
        Segmenter(xml)
    shutil.copy(shapes_ir.with_suffix(".bin"), tmp_path / "m.bin")
    xml.unlink()
    with pytest.raises(ModelNotFoundError):  # a lone .bin, its .xml gone: not found as given
        Segmenter(tmp_path / "nothing.xml")
    empty = tmp_path / "m_openvino_model"
    empty.mkdir()
    with pytest.raises(ModelFormatError, match="holds one IR .xml file"):
        Segmenter(empty)


def test_an_ir_that_does_not_segment_is_refused(detect_onnx, tmp_path):
    with pytest.raises(NotSegmentationModelError, match="'detect' model, not a segmentation model"):
        Segmenter(_ir(detect_onnx, tmp_path))


def test_a_device_openvino_lacks_is_an_error_that_names_its_devices(shapes_onnx):
    devices = ov.Core().available_devices
    with pytest.raises(ProviderError, match=f"OpenVINO device 'NPU7' is not available; this machine offers: "
                                            f"{', '.join(devices)}"):
        Segmenter(shapes_onnx, backend="openvino", provider_options={"openvino_device": "npu7"})
    with pytest.raises(ProviderError, match="'FPGA' is not available"):
        check_device("AUTO:FPGA,CPU", devices)
    check_device("AUTO", devices)  # AUTO alone lets OpenVINO choose among what it has
    with pytest.raises(ProviderError, match="runs on the OpenVINO backend, not on cuda"):
        Segmenter(shapes_onnx, backend="openvino", providers=["cuda"])
    with pytest.raises(ProviderError, match="asks for device CPU but openvino_device is GPU"):
        open_backend(shapes_onnx, ["openvino:CPU"], ProviderOptions(openvino_device="GPU"))


def test_settings_are_validated_once(shapes_ir):
    with pytest.raises(ConfigError, match="backend must be one of auto, onnxruntime, tensorrt, openvino"):
        PredictConfig(backend="ov")
    with pytest.raises(ConfigError, match="openvino_hint must be one of latency, throughput"):
        ProviderOptions(openvino_hint="fast")
    with pytest.raises(ConfigError, match="openvino_precision"):
        ProviderOptions(openvino_precision="int4")
    assert ProviderOptions(openvino_device=" gpu.1 ").openvino_device == "GPU.1"
    with pytest.raises(ModelFormatError, match="the onnxruntime backend runs .onnx files, not .xml"):
        Segmenter(shapes_ir, backend="onnxruntime")


def test_the_cli_runs_openvino_and_fails_in_one_line(shapes_ir, val_images, tmp_path):
    done = edgeseg_cli("predict", "--model", shapes_ir.parent, "--source", val_images[0], "--save-dir",
                       tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    bad = shutil.copy(shapes_ir, tmp_path / "lonely.xml")
    for args in (("--device", "openvino:GPU7", "--model", shapes_ir), ("--model", bad)):
        done = edgeseg_cli("predict", "--source", val_images[0], "--quiet", *args)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgeseg: error: "), done.stderr

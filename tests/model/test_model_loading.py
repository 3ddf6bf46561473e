"""Model loading: metadata, class names, providers, input types and shapes, and one clear error per bad model."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

from edgeseg import (
    ConfigError,
    ModelFormatError,
    ModelNotFoundError,
    NotSegmentationModelError,
    ProviderError,
    Segmenter,
)
from edgeseg.model.backends.onnxruntime import resolve_providers
from edgeseg.model.metadata import COCO_NAMES
from tests.helpers.common import mask_iou


def test_import_does_not_load_torch_or_ultralytics(shapes_onnx, val_images):
    code = (
        "import sys, edgeseg\n"
        f"r = edgeseg.Segmenter(r'{shapes_onnx}')(r'{val_images[0]}')[0]\n"
        "assert len(r) > 0\n"
        "heavy = [m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reads_ultralytics_metadata(shapes_onnx):
    seg = Segmenter(shapes_onnx)
    assert seg.names == {0: "circle", 1: "rectangle", 2: "triangle", 3: "hexagon", 4: "star"}
    assert seg.imgsz == (640, 640) and seg.stride == 32 and seg.num_classes == 5 and seg.num_protos == 32
    assert not seg.end2end
    assert "shapes11n-seg.onnx" in repr(seg)


def _without_metadata(src, dst):
    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.save(model, str(dst))
    return dst


def test_80_class_model_without_names_gets_coco_names(random80_onnx, tmp_path):
    seg = Segmenter(_without_metadata(random80_onnx, tmp_path / "bare.onnx"))
    assert seg.names == dict(enumerate(COCO_NAMES)) and len(seg.names) == 80


def test_other_model_without_names_gets_numbered_names(shapes_onnx, tmp_path):
    seg = Segmenter(_without_metadata(shapes_onnx, tmp_path / "bare.onnx"))
    assert seg.names == {i: f"class{i}" for i in range(5)}
    assert seg.imgsz == (640, 640)  # from the input shape when the metadata is gone


def test_explicit_cpu_provider_and_auto(shapes_onnx, caplog):
    with caplog.at_level(logging.INFO, logger="edgeseg"):
        seg = Segmenter(shapes_onnx, providers="auto")
    assert seg.providers[-1] == "CPUExecutionProvider"
    assert any("runs on" in m for m in caplog.messages)  # the choice is logged
    assert Segmenter(shapes_onnx, providers=["cpu"]).providers == ("CPUExecutionProvider",)


def test_auto_prefers_tensorrt_then_cuda_then_cpu():
    everything = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert resolve_providers("auto", everything) == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                     "CPUExecutionProvider"]
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert resolve_providers(["cuda:1", "cpu"], everything) == [("CUDAExecutionProvider", {"device_id": 1}),
                                                               "CPUExecutionProvider"]


@pytest.mark.parametrize("provider", ["cuda", "tensorrt", "NoSuchExecutionProvider"])
def test_missing_provider_is_an_error_not_a_fallback(shapes_onnx, provider):
    with pytest.raises(ProviderError, match="not available.*CPUExecutionProvider"):
        Segmenter(shapes_onnx, providers=[provider])


def test_bad_device_index(shapes_onnx):
    with pytest.raises(ProviderError, match="device index"):
        Segmenter(shapes_onnx, providers=["cpu:1"])


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        Segmenter(tmp_path / "nope.onnx")


def test_truncated_model_file(shapes_onnx, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(shapes_onnx.read_bytes()[:50_000])
    with pytest.raises(ModelFormatError, match="truncated, corrupt or not ONNX"):
        Segmenter(truncated)


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"not an onnx model at all"])
def test_corrupt_model_file(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelFormatError):
        Segmenter(bad)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelFormatError, match="not a file"):
        Segmenter(tmp_path)


def test_detection_model_is_not_a_segmentation_model(detect_onnx, tmp_path):
    with pytest.raises(NotSegmentationModelError, match="'detect' model"):
        Segmenter(detect_onnx)
    # without metadata the outputs give it away
    with pytest.raises(NotSegmentationModelError, match="not a YOLO segmentation model"):
        Segmenter(_without_metadata(detect_onnx, tmp_path / "bare-detect.onnx"))


def test_fixed_input_rejects_other_imgsz(shapes_onnx):
    with pytest.raises(ConfigError, match="fixed 640x640"):
        Segmenter(shapes_onnx, imgsz=320)
    assert Segmenter(shapes_onnx, imgsz=640).imgsz == (640, 640)


def test_dynamic_model_rounds_imgsz_to_stride(shapes_dynamic_onnx):
    assert Segmenter(shapes_dynamic_onnx).imgsz == (640, 640)  # Ultralytics' default for dynamic models
    assert Segmenter(shapes_dynamic_onnx, imgsz=(300, 330)).imgsz == (320, 352)


def _float16_input(src, dst):
    """The same network behind a float16 input (a Cast node in front), as a half-precision export has."""
    model = onnx.load(str(src))
    graph = model.graph
    old = graph.input[0]
    half = onnx.helper.make_tensor_value_info("images_fp16", onnx.TensorProto.FLOAT16,
                                              [d.dim_value for d in old.type.tensor_type.shape.dim])
    graph.node.insert(0, onnx.helper.make_node("Cast", ["images_fp16"], [old.name], to=onnx.TensorProto.FLOAT))
    graph.input.remove(old)
    graph.input.insert(0, half)
    onnx.save(model, str(dst))
    return dst


def test_float16_input_model(shapes_onnx, val_images, tmp_path):
    seg16 = Segmenter(_float16_input(shapes_onnx, tmp_path / "fp16.onnx"))
    seg32 = Segmenter(shapes_onnx)
    assert seg16.backend.input.dtype == np.float16
    for path in val_images[:5]:
        a, b = seg32(path)[0], seg16(path)[0]
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1.0)
        assert min(mask_iou(x, y) for x, y in zip(a.masks.data, b.masks.data, strict=True)) > 0.9


def test_fixed_batch_model_pads_short_batches(tmp_path_factory, val_images):
    from tests.helpers.common import SHAPES_PT, export_onnx

    model = export_onnx(tmp_path_factory, SHAPES_PT, "batch2", imgsz=320, batch=2)
    seg = Segmenter(model)
    assert seg.batch_size == 2
    images = [cv2.imread(str(p)) for p in val_images[:3]]  # 2 + 1: the second run is padded
    batched = seg(images)
    assert [r.orig_shape for r in batched] == [im.shape[:2] for im in images]
    for image, r in zip(images, batched, strict=True):
        again = seg([image])[0]
        assert len(again) == len(r) > 0
        np.testing.assert_allclose(again.boxes.xyxy, r.boxes.xyxy, atol=1e-3)


@pytest.mark.parametrize("fixture", ["shapes_onnx", "shapes_nms_onnx"])
def test_warmup_compiles_every_postprocessing_kernel(fixture, request, tmp_path):
    """With Numba's JIT, in a fresh process with an empty cache: after warmup() nothing is left to compile for a frame
    (kernels compiled at install have nothing to compile at all)."""
    model = request.getfixturevalue(fixture)
    code = (
        "import edgeseg\n"
        "from edgeseg.kernels import masks, nms, preprocess\n"
        f"seg = edgeseg.Segmenter(r'{model}')\n"
        "seg.warmup()\n"
        "kernels = [masks._masks_in_boxes, preprocess._hwc_bgr_to_chw_rgb]\n"
        "if not seg.end2end:\n"
        "    kernels += [nms._select_candidates, nms._xywh_to_xyxy, nms._nms]\n"
        "cold = [k.__name__ for k in kernels if not k.signatures]\n"
        "assert not cold, cold\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "EDGESEG_KERNELS": "jit"})

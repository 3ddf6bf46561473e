"""`edgeseg export --format openvino`: Ultralytics' folder with an IR that keeps the metadata, verified against the
checkpoint; FP16 weights; INT8 by NNCF, whose mask mAP50-95 on the shared validation set stays within 0.01 of FP32."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from edgeseg import Segmenter
from edgeseg.app.synthetic import make_scene
from edgeseg.app.val import validate
from tests.helpers.common import SHAPES_PT, SHARED, edgeseg_cli, export_onnx

ov = pytest.importorskip("openvino")

DATA_YAML = SHARED / "data" / "shapes-seg" / "data.yaml"
CALIB_IMAGES = 16
# mask mAP50-95, NNCF INT8 against FP32, on the 120 validation images (the bound). Measured on the shared
# 640 model with 32 synthetic calibration images (benchmarks/compare_backends.py): FP32 0.3529, INT8 0.3547.
MAX_MAP_LOSS = 0.01


@pytest.fixture(scope="session")
def onnx_320(tmp_path_factory) -> Path:
    return export_onnx(tmp_path_factory, SHAPES_PT, "shapes-320-for-openvino", imgsz=320)


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("openvino-calibration")
    for i in range(CALIB_IMAGES):
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), make_scene(320, 320, (1, 12), 10_000 + i, layout="random").image)
    return folder


def test_the_cli_exports_ultralytics_folder_with_metadata_and_verifies_it(val_images, tmp_path):
    checkpoint = Path(shutil.copy(SHAPES_PT, tmp_path / SHAPES_PT.name))
    verify_dir = tmp_path / "verify"
    verify_dir.mkdir()
    for p in val_images[:8]:
        shutil.copy(p, verify_dir / p.name)
    done = edgeseg_cli("export", checkpoint, "--format", "openvino", "--imgsz", "320", "--verify",
                       "--verify-images", verify_dir, "--quiet")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "shapes11n-seg_openvino_model"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.yaml", "shapes11n-seg.bin", "shapes11n-seg.xml"]
    assert "PASS" in done.stdout
    model = ov.Core().read_model(folder / "shapes11n-seg.xml")
    for key, value in (("task", "segment"), ("imgsz", "[320, 320]"), ("stride", "32")):
        assert model.get_rt_info(["framework", key]).astype(str) == value  # in the IR itself, not only the yaml
    (folder / "metadata.yaml").unlink()  # the IR alone is enough for edgeseg
    with Segmenter(folder / "shapes11n-seg.xml") as seg:
        assert seg.names[4] == "star" and seg.imgsz == (320, 320)


def test_half_writes_fp16_weights(onnx_320, val_images, tmp_path):
    from edgeseg_export.to_openvino import to_openvino

    xml = to_openvino(onnx_320, tmp_path / "m-fp16.xml", half=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-fp16.bin", "m-fp16.xml"]  # an .xml out: the IR alone
    assert 'precision="FP16"' in xml.read_text()
    with Segmenter(xml) as seg, Segmenter(onnx_320) as fp32:  # the CPU computes in f32 from the f16 weights
        assert len(seg(str(val_images[0]))[0]) == len(fp32(str(val_images[0]))[0]) > 0


def test_int8_by_nncf_keeps_mask_map_within_001_of_fp32(onnx_320, calib_dir, tmp_path):
    from edgeseg_export.to_openvino import QUANTIZATION_KEY, to_openvino

    int8 = to_openvino(onnx_320, tmp_path / "int8_openvino_model", int8=True, calib_dir=calib_dir)
    model = ov.Core().read_model(int8)
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) > 50
    assert "NNCF" in model.get_rt_info(["framework", QUANTIZATION_KEY]).astype(str)
    scores = {}
    for name, path in (("fp32", onnx_320), ("int8", int8)):
        with Segmenter(path, conf=0.001, iou=0.7, multi_label=True, backend="openvino") as seg:
            scores[name] = validate(seg, DATA_YAML, progress=False).mask_map50_95
    assert scores["fp32"] - scores["int8"] <= MAX_MAP_LOSS, scores


def test_bad_requests_fail_in_one_line(tmp_path):
    checkpoint = Path(shutil.copy(SHAPES_PT, tmp_path / SHAPES_PT.name))
    done = edgeseg_cli("export", checkpoint, "--format", "openvino", "--int8")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["edgeseg: error: int8 needs calibration images: pass calib_dir (a "
                                                "folder of typical images)"]

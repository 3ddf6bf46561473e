"""INT8 quantization (edgeseg_export.quantize) and the accuracy measure (edgeseg_export.accuracy)."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import onnx
import pytest

from edgeseg import Segmenter
from edgeseg.app.synthetic import make_scene
from edgeseg.errors import ExportError, ModelFormatError, ModelNotFoundError, OutputError, SourceError
from edgeseg.outputs.coco import encode_rle
from edgeseg_export import quantize as quantize_module
from edgeseg_export.accuracy import evaluate, load_ground_truth, mask_map
from edgeseg_export.quantize import calibration_files, float_nodes, quantize_int8
from tests.helpers.common import SHAPES_PT, SHARED, export_onnx, mask_iou

DATASET = SHARED / "data" / "shapes-seg"
CALIB_IMAGES = 16
# Agreement of the INT8 model with the FP32 one on the 120 validation images, for the FP32 model's confident objects
# (conf >= 0.5, 284 of them): the INT8 model, run at conf 0.1, must find each (same class, box IoU >= 0.5) and draw
# its mask alike. Measured with 16 synthetic calibration images: all 284 found, mean mask IoU 0.98, lowest 0.81.
# The floors leave room for other CPUs' int8 kernels and rounding; a broken head (quantized output concat) finds none.
CONFIDENT = 0.5
MIN_FOUND = 0.97
MIN_MEAN_MASK_IOU = 0.95


@pytest.fixture(scope="session")
def fp32_320(tmp_path_factory):
    """The shared checkpoint exported at 320x320, float32."""
    return export_onnx(tmp_path_factory, SHAPES_PT, "shapes-320", imgsz=320)


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    """A few synthetic training-like scenes, none of them an evaluation image; in a subfolder (the search recurses)."""
    folder = tmp_path_factory.mktemp("calibration")
    (folder / "scenes").mkdir()
    for i in range(CALIB_IMAGES):
        scene = make_scene(320, 320, (1, 12), 10_000 + i, layout="random")
        cv2.imwrite(str(folder / "scenes" / f"{i:02d}.jpg"), scene.image)
    (folder / "notes.txt").write_text("not an image: skipped")
    return folder


@pytest.fixture(scope="session")
def int8_model(fp32_320, calib_dir, tmp_path_factory):
    return quantize_int8(fp32_320, calib_dir, tmp_path_factory.mktemp("int8") / "shapes-int8.onnx",
                         calib_images=CALIB_IMAGES)


# --- quantize_int8 ---------------------------------------------------------------------------------------------------

def test_int8_model_is_qdq_keeps_metadata_and_leaves_the_decoding_float(fp32_320, int8_model):
    fp32, int8 = onnx.load(fp32_320), onnx.load(int8_model)
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") > 100 and ops.count("DequantizeLinear") > 100
    assert {init.data_type for init in int8.graph.initializer} >= {onnx.TensorProto.INT8}  # int8 weights

    meta32 = {p.key: p.value for p in fp32.metadata_props}
    meta8 = {p.key: p.value for p in int8.metadata_props}
    assert {k: meta8.get(k) for k in meta32} == meta32
    assert "int8 QDQ" in meta8[quantize_module.QUANTIZATION_KEY]

    # every decoding node is still there and takes no int8 input directly; the outputs are float32
    kept = {n.name: n for n in int8.graph.node}
    producers = {o: n for n in int8.graph.node for o in n.output}
    for name in float_nodes(fp32):
        assert name in kept
        assert all(producers.get(i) is None or producers[i].op_type != "QuantizeLinear" for i in kept[name].input)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in int8.graph.output)


def test_int8_model_agrees_with_fp32(fp32_320, int8_model, val_images):
    images = [str(p) for p in val_images]
    with Segmenter(fp32_320, conf=0.25) as seg32, Segmenter(int8_model, conf=0.1) as seg8:
        assert seg8.names == seg32.names and seg8.imgsz == seg32.imgsz == (320, 320)
        pairs = list(zip(seg32.predict(images), seg8.predict(images), strict=True))
    ious, total = [], 0
    for ref, other in pairs:
        ref = ref[ref.boxes.conf >= CONFIDENT]
        total += len(ref)
        for i in range(len(ref)):
            same = np.nonzero(other.boxes.cls == ref.boxes.cls[i])[0]
            overlap = [_box_iou(ref.boxes.xyxy[i], other.boxes.xyxy[j]) for j in same]
            if overlap and max(overlap) >= 0.5:
                j = same[int(np.argmax(overlap))]
                ious.append(mask_iou(ref.masks.dense(i), other.masks.dense(j)))
    assert total > 200
    assert len(ious) / total >= MIN_FOUND, f"INT8 found {len(ious)} of {total} confident FP32 objects"
    assert np.mean(ious) >= MIN_MEAN_MASK_IOU, f"mean mask IoU {np.mean(ious):.3f} of matched objects"


def test_float_nodes_are_the_head_decoding(fp32_320):
    names = float_nodes(onnx.load(fp32_320))
    by_name = {n.name: n for n in onnx.load(fp32_320).graph.node}
    producer = {o: n.name for n in by_name.values() for o in n.output}
    assert producer["output0"] in names  # the concat of boxes, class scores and mask coefficients
    assert any(n.endswith("/dfl/conv/Conv") for n in names)
    # the learned layers, the head's branches and the prototypes included, are quantized
    assert not any(by_name[n].op_type == "Conv" and "/dfl/" not in n for n in names)
    assert producer["output1"] not in names

    plain = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])]))
    with pytest.raises(ExportError, match="cannot find the YOLO head"):
        float_nodes(plain)


def test_calibration_files_are_spread_over_the_folder(tmp_path):
    for i in range(10):
        (tmp_path / f"{i}.png").write_bytes(b"")
    assert [p.name for p in calibration_files(tmp_path, 4)] == ["0.png", "3.png", "6.png", "9.png"]
    assert len(calibration_files(tmp_path, 50)) == 10


@pytest.mark.parametrize("case", ["missing", "file", "empty", "no images"])
def test_bad_calibration_folder(fp32_320, tmp_path, case):
    calib = tmp_path / "calib"
    if case == "file":
        calib.write_text("x")
    elif case != "missing":
        calib.mkdir()
        if case == "no images":
            (calib / "labels.txt").write_text("0 0.1 0.1 0.2 0.2 0.3 0.1")
    message = {"missing": "does not exist", "file": "is not a folder"}.get(case, "no images in calibration folder")
    with pytest.raises(SourceError, match=message):
        quantize_int8(fp32_320, calib, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_bad_models(fp32_320, int8_model, calib_dir, tmp_path):
    out = tmp_path / "out.onnx"
    with pytest.raises(ModelNotFoundError, match="not found"):
        quantize_int8(tmp_path / "none.onnx", calib_dir, out)
    (tmp_path / "notes.onnx").write_text("this is not a model")
    with pytest.raises(ModelFormatError, match="as an ONNX model|not a YOLO model"):
        quantize_int8(tmp_path / "notes.onnx", calib_dir, out)
    with pytest.raises(ExportError, match="already quantized"):
        quantize_int8(int8_model, calib_dir, out)
    half = onnx.load(fp32_320)
    weight = half.graph.initializer[0]
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight).astype(np.float16), weight.name))
    onnx.save(half, tmp_path / "half.onnx")
    with pytest.raises(ExportError, match="FP16 model"):
        quantize_int8(tmp_path / "half.onnx", calib_dir, out)
    with pytest.raises(ExportError, match="calibration method"):
        quantize_int8(fp32_320, calib_dir, out, method="kl")
    with pytest.raises(ExportError, match="calib_images"):
        quantize_int8(fp32_320, calib_dir, out, calib_images=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.onnx", "notes.onnx"]


def test_unwritable_output_and_nothing_half_written(fp32_320, calib_dir, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        quantize_int8(fp32_320, calib_dir, tmp_path / "file" / "out.onnx")  # its folder is a file
    with pytest.raises(OutputError, match="it is a folder"):
        quantize_int8(fp32_320, calib_dir, tmp_path)

    def fail(*args, **kwargs):
        raise RuntimeError("calibration failed\nsecond line")

    monkeypatch.setattr(quantize_module, "quantize_static", fail)
    (tmp_path / "out.onnx").write_bytes(b"previous")
    with pytest.raises(ExportError, match="could not quantize .*: calibration failed$"):
        quantize_int8(fp32_320, calib_dir, tmp_path / "out.onnx")
    assert (tmp_path / "out.onnx").read_bytes() == b"previous"  # untouched, and no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out.onnx"]


# --- accuracy --------------------------------------------------------------------------------------------------------

def test_mask_map_on_a_few_images(fp32_320):
    scores = mask_map(fp32_320, DATASET, max_images=6)
    assert scores["images"] == 6 and scores["instances"] > 10
    for key in ("mask_map50_95", "mask_map50", "box_map50_95", "box_map50"):
        assert 0.0 < scores[key] <= 1.0
    assert scores["mask_map50"] >= scores["mask_map50_95"] and scores["box_map50"] >= scores["box_map50_95"]


def test_ground_truth_as_predictions_scores_one_and_empty_masks_zero():
    images, gt = load_ground_truth(DATASET, max_images=6)
    assert len(images) == len(gt["images"]) == 6
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
                "segmentation": a["segmentation"]} for a in gt["annotations"]]
    scores = evaluate(gt, perfect)
    assert [scores[k] for k in ("mask_map50_95", "mask_map50", "box_map50_95", "box_map50")] == [1.0] * 4

    # right boxes, empty masks: the two are scored apart
    empty = [{**d, "segmentation": encode_rle(np.zeros((1, 1), np.uint8), (0, 0), d["segmentation"]["size"])}
             for d in perfect]
    scores = evaluate(gt, empty)
    assert scores["box_map50_95"] == 1.0 and scores["mask_map50_95"] == 0.0
    assert evaluate(gt, [])["mask_map50_95"] == 0.0


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools' decode on NumPy 2
def test_ground_truth_masks_are_the_filled_label_polygons():
    from pycocotools import mask as coco_mask

    images, gt = load_ground_truth(DATASET, max_images=1)
    h, w = gt["images"][0]["height"], gt["images"][0]["width"]
    lines = (DATASET / "labels" / "val" / f"{images[0].stem}.txt").read_text().split("\n")
    polygons = [np.array(line.split()[1:], np.float64).reshape(-1, 2) for line in lines if line.strip()]
    assert len(polygons) == len(gt["annotations"])
    for polygon, ann in zip(polygons, gt["annotations"], strict=True):
        expected = np.zeros((h, w), np.uint8)
        cv2.fillPoly(expected, [np.round(polygon * (w, h)).astype(np.int32)], 1)
        assert np.array_equal(coco_mask.decode(ann["segmentation"]), expected)
        assert ann["area"] == expected.sum()


def test_accuracy_errors(tmp_path, fp32_320, monkeypatch):
    with pytest.raises(SourceError, match="not a YOLO-seg dataset"):
        mask_map(fp32_320, tmp_path)
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "val" / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.1 0.1 0.5\n")
    with pytest.raises(SourceError, match=r"a.txt:1: a polygon needs at least 3 x y pairs"):
        load_ground_truth(tmp_path)
    (tmp_path / "labels" / "val" / "a.txt").write_text("")
    _, gt = load_ground_truth(tmp_path)
    with pytest.raises(SourceError, match="no objects"):
        evaluate(gt, [])
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)  # as if not installed
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    with pytest.raises(ExportError, match="pip install pycocotools"):
        evaluate(load_ground_truth(tmp_path)[1], [])


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0

"""A model whose outputs go bad (an FP16 model that overflows gives inf and NaN; a broken one negative sizes): the
candidates with such boxes or scores are dropped in decode, on the CPU and the GPU path alike (the GPU path under
Numba's CUDA simulator, see tests/helpers/cudasim.py), and the results stay usable: isolate, COCO records, strict JSON.
A model whose input is not float32 or float16 is refused when it loads. Results of odd models stay usable too: class
names longer than a file name can be, a contour strategy that does not exist."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cudasim

cudasim.use_simulator()

from edgeseg import Segmenter  # noqa: E402
from edgeseg.app.synthetic import make_scene  # noqa: E402
from edgeseg.assets import demo_model_path  # noqa: E402
from edgeseg.errors import ConfigError, NotSegmentationModelError  # noqa: E402
from edgeseg.outputs.isolate import safe_label  # noqa: E402
from edgeseg.results import Boxes, Masks, Results  # noqa: E402

DROPPED = "dropped {} candidates with non-finite or negative boxes"

# the simulator runs the mask kernels on NumPy scalars, which warn about NaN arithmetic; a GPU says nothing
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


class FaultyBackend:
    """The real backend, with `fault(det, protos)` applied (in place, to copies) to the outputs of every run."""

    def __init__(self, backend, det_index: int, fault: Callable[[np.ndarray, np.ndarray], None]):
        self._backend, self._det_index, self._fault = backend, det_index, fault

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = [o.copy() for o in self._backend.infer(batch)]
        self._fault(outputs[self._det_index], outputs[1 - self._det_index])
        return outputs

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_scene(320, 240, 6, seed=2).image


def run(model: Path, image: np.ndarray, fault, device: str = "cpu"):
    """Results of `model` on `image` with its outputs broken by `fault`."""
    with Segmenter(model, device=device) as seg:
        seg.backend = FaultyBackend(seg.backend, seg.spec.det_index, fault)
        return seg(image)[0]


def candidates(det: np.ndarray, nc: int) -> np.ndarray:
    """Anchors of a raw head (1, 4 + nc + nm, A) whose best class score beats the default conf."""
    return np.flatnonzero(det[0, 4 : 4 + nc].max(axis=0) > 0.25)


def break_raw_head(det: np.ndarray, protos: np.ndarray) -> None:
    """Three of every four candidates get an infinite width, a negative height or a NaN centre; one more anchor an
    infinite score; two kept candidates NaN and infinite mask coefficients; the prototypes a band of NaN."""
    nc = 5
    found = candidates(det, nc)
    det[0, 2, found[0::4]] = np.inf
    det[0, 3, found[1::4]] = -3.0
    det[0, 0, found[2::4]] = np.nan
    det[0, 4, np.flatnonzero(det[0, 4 : 4 + nc].max(axis=0) < 0.01)[0]] = np.inf
    det[0, 4 + nc, found[3]] = np.nan
    det[0, 4 + nc + 1, found[7]] = np.inf
    det[0, 2:4, np.flatnonzero(det[0, 4 : 4 + nc].max(axis=0) < 0.01)[1:50]] = -np.inf  # not candidates: not counted
    protos[0, :, 10:14, :] = np.nan


def assert_usable(result) -> None:
    assert np.isfinite(result.boxes.xyxy).all() and np.isfinite(result.boxes.conf).all()
    assert (result.boxes.xyxy[:, 2:] >= result.boxes.xyxy[:, :2]).all()
    cutouts = result.isolate()
    assert len(cutouts) == len(result) and all(c.ndim == 3 for c in cutouts)
    records = result.to_coco(image_id=1)
    assert len(records) == len(result)
    json.dumps(records, allow_nan=False)  # ValueError on NaN or inf


def test_broken_boxes_are_dropped_and_the_results_stay_usable(scene, caplog):
    model = demo_model_path()
    clean = run(model, scene, lambda det, protos: None)
    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess"):
        result = run(model, scene, break_raw_head)
    assert 0 < len(result) < len(clean)
    assert DROPPED.format(15 + 1) in caplog.messages  # 20 candidates, 3 of 4 broken, and the infinite score
    assert_usable(result)


def test_the_gpu_path_drops_what_the_cpu_path_drops(scene, caplog):
    model = demo_model_path()
    cpu = run(model, scene, break_raw_head)
    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess"):
        gpu = run(model, scene, break_raw_head, device="cuda")
    assert DROPPED.format(16) in caplog.messages
    assert len(gpu) == len(cpu) > 0
    np.testing.assert_array_equal(gpu.boxes.xyxy, cpu.boxes.xyxy)
    np.testing.assert_array_equal(gpu.boxes.conf, cpu.boxes.conf)
    np.testing.assert_array_equal(gpu.boxes.cls, cpu.boxes.cls)
    for a, b in zip(gpu.masks.crops, cpu.masks.crops, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_usable(gpu)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_an_overflowed_output_finds_nothing(scene, caplog, device):
    def overflow(det, protos):
        det[:] = np.inf
        protos[:] = np.nan

    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess"):
        result = run(demo_model_path(), scene, overflow, device)
    assert len(result) == 0 and result.to_coco() == [] and result.isolate() == []
    assert DROPPED.format(2100) in caplog.messages  # every anchor: an infinite best score


def test_nms_in_graph_rows_with_broken_boxes_are_dropped(shapes_nms_onnx, scene, caplog):
    def break_rows(det, protos):
        rows = np.flatnonzero(det[0, :, 4] > 0.25)
        assert len(rows) >= 4
        det[0, rows[0], 2] = det[0, rows[0], 0] - 5  # x2 < x1
        det[0, rows[1], 1] = np.inf
        det[0, rows[2], 4] = np.inf
        det[0, rows[3], 6] = np.nan  # a coefficient: the row stays, its mask is empty and the object goes
        protos[0, 1, :, 3] = np.inf

    clean = run(shapes_nms_onnx, scene, lambda det, protos: None)
    for device in ("cpu", "cuda"):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess"):
            result = run(shapes_nms_onnx, scene, break_rows, device)
        assert DROPPED.format(3) in caplog.messages
        assert 0 < len(result) <= len(clean) - 3
        assert_usable(result)


def test_a_model_with_a_uint8_input_is_refused_when_it_loads(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # uint8 (1, 3, 32, 32) -> Cast -> a Conv to 4 + 1 + 2 channels and a Conv to 2 prototypes, reshaped to the ranks of
    # a segmentation model's outputs: (1, 7, 16) detections and (1, 2, 8, 8) prototypes
    weights = [helper.make_tensor("w_det", TensorProto.FLOAT, [7, 3, 8, 8], np.zeros(7 * 3 * 64).tolist()),
               helper.make_tensor("w_proto", TensorProto.FLOAT, [2, 3, 4, 4], np.zeros(2 * 3 * 16).tolist()),
               helper.make_tensor("det_shape", TensorProto.INT64, [3], [1, 7, 16])]
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w_det"], ["d"], strides=[8, 8]),
             helper.make_node("Reshape", ["d", "det_shape"], ["output0"]),
             helper.make_node("Conv", ["x", "w_proto"], ["output1"], strides=[4, 4])]
    graph = helper.make_graph(nodes, "uint8_input",
                              [helper.make_tensor_value_info("images", TensorProto.UINT8, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 16]),
                               helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, 2, 8, 8])],
                              weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "uint8-input.onnx"
    onnx.save(model, str(path))
    with pytest.raises(NotSegmentationModelError) as refused:
        Segmenter(path)
    message = str(refused.value)
    assert message == ("uint8-input.onnx: input must be float32 or float16, got uint8; edgeseg feeds the image scaled "
                       "to [0, 1]: export the model with a float input (Ultralytics' default)")
    assert "\n" not in message


def two_squares(names: dict[int, str]) -> Results:
    """Two objects, of classes 0 and 1, each a filled square, in a 40 x 60 frame."""
    shape = (40, 60)
    boxes = Boxes(np.array([[2, 3, 12, 13], [30, 10, 50, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                  np.array([0, 1], np.int64), shape)
    masks = Masks((np.ones((10, 10), np.uint8), np.ones((20, 20), np.uint8)), np.array([[2, 3], [30, 10]]), shape)
    return Results(np.full((*shape, 3), 200, np.uint8), str(Path("frame.jpg")), names, boxes, masks)


def test_class_names_longer_than_a_file_name_still_save_cut_outs(tmp_path):
    result = two_squares({0: "x" * 400, 1: "x" * 399 + "y"})  # the same first 399 characters
    written = result.save_isolated(tmp_path, save_mask=True, save_crop=True)
    assert len(written) == 6 and len({p.name for p in written}) == 6
    assert all(p.is_file() and len(p.name.encode()) < 255 for p in written)
    first, second = (safe_label(n) for n in result.names.values())
    assert first != second and first.startswith("x" * 60 + "-") and len(first) == len(second) == 69
    assert written[0].name == f"frame_{first}-0.png" and written[3].name == f"frame_{second}-1.png"
    assert safe_label("x" * 69) == "x" * 69 and safe_label("traffic light") == "traffic_light"  # short: as before
    assert safe_label("a/" * 100) != safe_label("a:" * 100)  # long names that make the same safe characters


def test_an_unknown_contour_strategy_is_a_config_error():
    result = two_squares({0: "a", 1: "b"})
    assert [len(c) for c in result.masks.contours("all")] == [4, 4]
    for masks in (result.masks, result[[]].masks):  # also when there is nothing to trace
        with pytest.raises(ConfigError) as refused:
            masks.contours("bogus")
        assert str(refused.value) == "contour strategy must be one of 'largest', 'all', got 'bogus'"


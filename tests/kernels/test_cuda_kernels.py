"""The CUDA kernels (edgeseg/kernels/cuda/) against the CPU kernels, under Numba's CUDA simulator (tests/cudasim.py):
the same masks bit for bit, the same detections, cut-outs and blends. Sizes are tiny: the simulator runs every GPU
thread as Python. These runs check the kernels' logic and float32 arithmetic; they do not run on a GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cudasim  # noqa: E402

cudasim.use_simulator()

import naive  # noqa: E402
from numba import cuda  # noqa: E402
from test_masks_kernel import random_boxes, random_prototypes  # noqa: E402

import edgeseg.postprocess as postprocess  # noqa: E402
from edgeseg.config import MAX_WH, PredictConfig  # noqa: E402
from edgeseg.kernels.blend import blend_masks, blend_weight  # noqa: E402
from edgeseg.kernels.cuda.blend import blend_masks_cuda  # noqa: E402
from edgeseg.kernels.cuda.cast import to_float32  # noqa: E402
from edgeseg.kernels.cuda.isolate import cut_outs_cuda  # noqa: E402
from edgeseg.kernels.cuda.masks import linear_taps, masks_in_boxes_cuda  # noqa: E402
from edgeseg.kernels.cuda.nms import decode_end2end_cuda, decode_raw_cuda  # noqa: E402
from edgeseg.kernels.isolate import cut_out  # noqa: E402
from edgeseg.kernels.masks import masks_in_boxes  # noqa: E402
from edgeseg.letterbox import box_pixels, mask_geometry  # noqa: E402


def test_linear_taps_are_the_naive_ones():
    for size, in_size, scale in [(37, 8, np.float32(8 / 37)), (16, 8, np.float32(0.5)), (5, 9, np.float32(1.8))]:
        i0, i1, w1 = linear_taps(size, scale, in_size, 3)
        n0, n1, nw = naive.linear_taps(size, in_size, scale)
        np.testing.assert_array_equal(i0, n0 + 3)
        np.testing.assert_array_equal(i1, n1 + 3)
        np.testing.assert_array_equal(w1, nw)


# (prototype grid, image): upsample 4, 2, 1 (padded image), 1 (padded grid)
@pytest.mark.parametrize("grid, shape, upsample", [((8, 8), (31, 37), 4), ((8, 8), (33, 52), 2), ((8, 8), (24, 32), 1),
                                                   ((6, 10), (24, 40), 1)])
def test_masks_are_the_cpu_kernels_bit_for_bit(grid, shape, upsample):
    rng = np.random.default_rng(sum(shape))
    protos = random_prototypes(rng, grid, nm=6)
    boxes = random_boxes(rng, 3, shape)  # and the special ones: whole image, empty, sub-pixel, border
    coefs = rng.normal(0, 1, (len(boxes), 6)).astype(np.float32)
    f, crop = mask_geometry(grid, shape)
    assert f == upsample
    bounds = box_pixels(boxes, shape)
    flat, offsets, nonzero = masks_in_boxes_cuda(cuda.to_device(protos), cuda.to_device(coefs), bounds, f, crop, shape)
    want, want_offsets = masks_in_boxes(protos, coefs, bounds, f, crop, shape)
    np.testing.assert_array_equal(offsets, want_offsets)
    got = flat.copy_to_host()
    assert got.dtype == np.uint8 and want.any() and not want.all()  # masks with edges, not trivially equal
    np.testing.assert_array_equal(got, want)
    expected = [int(want[offsets[i] : offsets[i + 1]].any()) for i in range(len(bounds))]
    np.testing.assert_array_equal(nonzero.copy_to_host(), expected)


def test_masks_wrapper_checks_its_inputs():
    protos = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="coefs"):
        masks_in_boxes_cuda(protos, np.zeros((2, 3), np.float32), np.zeros((2, 4), np.int64), 1, (0, 0, 8, 8), (8, 8))
    with pytest.raises(ValueError, match="inside"):
        masks_in_boxes_cuda(protos, np.zeros((1, 4), np.float32), np.array([[0, 0, 9, 4]]), 1, (0, 0, 8, 8), (8, 8))
    with pytest.raises(ValueError, match="float32 on the device"):
        masks_in_boxes_cuda(cuda.to_device(protos.astype(np.float16)), np.zeros((0, 4), np.float32),
                            np.zeros((0, 4), np.int64), 1, (0, 0, 8, 8), (8, 8))


def raw_head(rng: np.random.Generator, nc: int, nm: int, anchors: int) -> np.ndarray:
    """(4 + nc + nm, A) float32: boxes in a few clusters (NMS has work), tied scores, and scores near 0."""
    pred = np.zeros((4 + nc + nm, anchors), np.float32)
    centres = rng.uniform(10, 54, (4, 2))[rng.integers(0, 4, anchors)]
    pred[:2] = (centres + rng.normal(0, 2, (anchors, 2))).T
    pred[2:4] = rng.uniform(6, 20, (2, anchors))
    pred[4 : 4 + nc] = rng.uniform(0, 1, (nc, anchors)) ** 2
    pred[4 : 4 + nc, ::5] = 0.5  # ties between anchors and between classes
    pred[4 + nc :] = rng.normal(0, 1, (nm, anchors))
    return pred


CONFIGS = [
    dict(conf=0.3, iou=0.5),
    dict(conf=0.2, iou=0.3, multi_label=True, max_det=9),
    dict(conf=0.25, iou=0.6, agnostic_nms=True, classes=(0, 2)),
]


@pytest.mark.parametrize("settings", CONFIGS)
def test_decode_raw_is_the_cpu_decode(settings):
    rng = np.random.default_rng(len(settings))
    nc, nm = 3, 4
    pred = raw_head(rng, nc, nm, 160)
    cfg = PredictConfig(**settings)
    want = postprocess.decode_raw(pred, nc, cfg)
    xyxy, conf, cls, coefs = decode_raw_cuda(cuda.to_device(pred), nc, cfg.conf,
                                             postprocess.allowed_classes(nc, cfg.classes), cfg.multi_label, cfg.iou,
                                             cfg.max_det, 0.0 if cfg.agnostic_nms else float(MAX_WH), 30000)
    candidates = len(postprocess.select_candidates(pred, nc, cfg.conf, postprocess.allowed_classes(nc, cfg.classes),
                                                   cfg.multi_label)[0])
    assert 0 < len(want.conf) < candidates  # NMS suppressed some and kept some
    np.testing.assert_array_equal(xyxy, want.xyxy)
    np.testing.assert_array_equal(conf, want.conf)
    np.testing.assert_array_equal(cls, want.cls)
    np.testing.assert_array_equal(coefs.copy_to_host(), want.coefs)


def test_decode_raw_keeps_the_same_top_candidates(monkeypatch):
    rng = np.random.default_rng(7)
    pred = raw_head(rng, 2, 3, 90)
    monkeypatch.setattr(postprocess, "MAX_NMS_CANDIDATES", 11)
    cfg = PredictConfig(conf=0.1, iou=0.45)
    want = postprocess.decode_raw(pred, 2, cfg)
    got = decode_raw_cuda(pred, 2, cfg.conf, np.ones(2, bool), False, cfg.iou, cfg.max_det, float(MAX_WH), 11)
    np.testing.assert_array_equal(got[0], want.xyxy)
    np.testing.assert_array_equal(got[1], want.conf)


def test_decode_raw_with_nothing_above_the_threshold():
    pred = raw_head(np.random.default_rng(0), 2, 3, 40)
    xyxy, conf, cls, coefs = decode_raw_cuda(pred, 2, 0.99, np.ones(2, bool), False, 0.7, 300, float(MAX_WH), 30000)
    assert xyxy.shape == (0, 4) and conf.shape == (0,) and cls.shape == (0,) and coefs.shape == (0, 3)


@pytest.mark.parametrize("settings", [dict(conf=0.3), dict(conf=0.1, classes=(1, 5), max_det=4)])
def test_decode_end2end_is_the_cpu_decode(settings):
    rng = np.random.default_rng(3)
    pred = rng.normal(0, 1, (40, 6 + 5)).astype(np.float32)
    pred[:, 4], pred[:, 5] = rng.uniform(0, 1, 40), rng.integers(0, 3, 40)
    cfg = PredictConfig(**settings)
    want = postprocess.decode_end2end(pred, cfg)
    xyxy, conf, cls, coefs = decode_end2end_cuda(cuda.to_device(pred), cfg.conf, cfg.classes, cfg.max_det)
    assert len(want.conf) > 0
    for got, expected in [(xyxy, want.xyxy), (conf, want.conf), (cls, want.cls), (coefs.copy_to_host(), want.coefs)]:
        np.testing.assert_array_equal(got, expected)


def random_crops(rng: np.random.Generator, shape: tuple[int, int], n: int):
    """n random 0/1 mask crops inside a frame of `shape`, with their pixel boxes, flat buffer and starts."""
    h, w = shape
    boxes = []
    for _ in range(n):
        x0, y0 = rng.integers(0, w - 1), rng.integers(0, h - 1)
        boxes.append([x0, y0, rng.integers(x0 + 1, w + 1), rng.integers(y0 + 1, h + 1)])
    boxes = np.array(boxes + [[3, 3, 3, 7]], np.int64)  # and a zero-width one
    crops = [(rng.uniform(0, 1, (y1 - y0, x1 - x0)) > 0.4).astype(np.uint8) for x0, y0, x1, y1 in boxes]
    sizes = np.array([c.size for c in crops])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return crops, boxes, np.concatenate([c.ravel() for c in crops] + [np.zeros(1, np.uint8)]), starts


@pytest.mark.parametrize("mode", ["black", "transparent", "mask"])
def test_cut_outs_are_the_cpu_cut_outs(mode):
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 256, (14, 19, 3), dtype=np.uint8)
    crops, boxes, flat, starts = random_crops(rng, frame.shape[:2], 3)
    # each object's integer box, a region reaching past its mask, and the full frame
    regions = np.array([boxes[0], [0, 0, 19, 14], [2, 1, 15, 12], boxes[3]], np.int64)
    out, offsets = cut_outs_cuda(cuda.to_device(frame), cuda.to_device(flat), starts, boxes, regions, mode)
    host = out.copy_to_host()
    for i, (crop, box, region) in enumerate(zip(crops, boxes, regions)):
        want = cut_out(frame, crop, box[:2], region, mode)
        np.testing.assert_array_equal(host[offsets[i] : offsets[i + 1]].reshape(want.shape), want)


def test_cut_outs_refuse_a_region_outside_the_frame():
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="inside the 8x8 frame"):
        cut_outs_cuda(frame, np.ones(4, np.uint8), [0], [[0, 0, 2, 2]], [[0, 0, 9, 8]], "black")


@pytest.mark.parametrize("alpha", [0.5, 0.3, 1.0])
def test_blend_is_the_cpu_blend(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    frame = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    crops, boxes, flat, starts = random_crops(rng, frame.shape[:2], 4)  # overlapping: the order matters
    colors = rng.integers(0, 256, (len(crops), 3))
    want = blend_masks(frame.copy(), crops, boxes[:, :2], colors, alpha)
    device = cuda.to_device(frame)
    blend_masks_cuda(device, flat, starts, boxes, colors, blend_weight(alpha))
    np.testing.assert_array_equal(device.copy_to_host(), want)
    assert not np.array_equal(want, frame)


def test_blend_needs_a_device_frame():
    with pytest.raises(ValueError, match="device array"):
        blend_masks_cuda(np.zeros((4, 4, 3), np.uint8), np.ones(1, np.uint8), [0], [[0, 0, 1, 1]], [[1, 2, 3]], 128)


def test_float16_outputs_become_float32_as_on_the_cpu():
    values = np.random.default_rng(0).normal(0, 10, (2, 3, 5)).astype(np.float16)
    got = to_float32(cuda.to_device(values))
    assert got.shape == values.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got.copy_to_host(), values.astype(np.float32))
    with pytest.raises(ValueError, match="device array"):
        to_float32(values)

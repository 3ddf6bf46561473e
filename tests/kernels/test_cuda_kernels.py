"""The CUDA kernels (edgeseg/kernels/cuda/) against the CPU kernels, under Numba's CUDA simulator
(tests/helpers/cudasim.py): the same masks bit for bit, the same detections, cut-outs and blends. Sizes are tiny: the
simulator runs every GPU thread as Python. These runs check the kernels' logic and float32 arithmetic; they do not run
on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import cudasim

cudasim.use_simulator()

from numba import cuda  # noqa: E402

import edgeseg.postprocess.cpu as postprocess  # noqa: E402
from edgeseg.config import PredictConfig  # noqa: E402
from edgeseg.inputs.letterbox import box_pixels, mask_geometry  # noqa: E402
from edgeseg.kernels.blend import blend_masks, blend_weight  # noqa: E402
from edgeseg.kernels.cuda.blend import blend_masks_cuda  # noqa: E402
from edgeseg.kernels.cuda.cast import to_float32  # noqa: E402
from edgeseg.kernels.cuda.isolate import cut_outs_cuda  # noqa: E402
from edgeseg.kernels.cuda.masks import linear_taps, masks_in_boxes_cuda  # noqa: E402
from edgeseg.kernels.cuda.nms import decode_end2end_cuda, decode_raw_cuda  # noqa: E402
from edgeseg.kernels.isolate import cut_out  # noqa: E402
from edgeseg.kernels.masks import masks_in_boxes  # noqa: E402
from edgeseg.postprocess.cpu import MAX_WH  # noqa: E402
from tests.helpers import naive  # noqa: E402
from tests.helpers.random_inputs import faulty_head, faulty_rows, random_boxes, random_prototypes  # noqa: E402  # noqa: E402


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


def full_frame_logits(protos: np.ndarray, coefs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) float32 logits at source resolution, computed over the whole frame (the masks before the threshold)."""
    f, (top, left, bottom, right) = naive.mask_geometry(protos.shape[1:], shape)
    out = []
    for coef in coefs:
        logits = np.zeros(protos.shape[1:], np.float32)
        for k in range(len(protos)):
            logits += coef[k] * protos[k]
        if f > 1:
            inv = np.float32(1.0 / f)
            logits = naive.resize_bilinear(logits, (protos.shape[1] * f, protos.shape[2] * f), scale=(inv, inv))
        out.append(naive.resize_bilinear(logits[top:bottom, left:right], shape))
    return np.array(out)


@pytest.mark.parametrize("shape", [(24, 32), (31, 37)])  # upsample 1 and 4
def test_mask_logits_of_exactly_zero_are_background(shape):
    # the threshold is logit > 0, as on the CPU: prototype 0 is exactly 0 on its left half, so the logits there are
    # exactly 0.0 after both resamples; the second object has all coefficients 0 (every logit 0)
    protos = np.zeros((2, 8, 8), np.float32)
    protos[0, :, 4:] = 1.0
    protos[1] = -1.0  # times a zero coefficient: -0.0
    coefs = np.array([[1, 0], [0, 0], [1, 0]], np.float32)
    h, w = shape
    boxes = np.array([[0, 0, w, h], [0, 0, w, h], [0, 0, w // 4, h]], np.float32)  # the third one on the zeros only
    f, crop = mask_geometry((8, 8), shape)
    bounds = box_pixels(boxes, shape)
    logits = full_frame_logits(protos, coefs, shape)
    assert (logits[0] == 0).any() and (logits[0] > 0).any()  # an edge, with exact zeros beside it
    assert (logits[1] == 0).all() and (logits[2, :, : w // 4] == 0).all()
    flat, offsets, nonzero = masks_in_boxes_cuda(protos, coefs, bounds, f, crop, shape)
    want, _ = masks_in_boxes(protos, coefs, bounds, f, crop, shape)
    got = flat.copy_to_host()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[: offsets[1]].reshape(shape), logits[0] > 0)  # the zeros are background
    assert not got[offsets[1] :].any()
    np.testing.assert_array_equal(nonzero.copy_to_host(), [1, 0, 0])  # empty masks: those objects are dropped


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
    xyxy, conf, cls, coefs, dropped = decode_raw_cuda(cuda.to_device(pred), nc, cfg.conf,
                                                      postprocess.allowed_classes(nc, cfg.classes), cfg.multi_label,
                                                      cfg.iou, cfg.max_det, 0.0 if cfg.agnostic_nms else float(MAX_WH),
                                                      30000)
    assert dropped == 0
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


def anchors_head(xyxy, scores, nm: int = 2) -> np.ndarray:
    """(4 + nc + nm, A) float32 raw head of A anchors with the given corner boxes (A, 4) (as centre and size, which
    give them back exactly for integer corners), class scores (A, nc) and coefficients 0, 1, 2..."""
    xyxy, scores = np.asarray(xyxy, np.float32), np.asarray(scores, np.float32)
    xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    coefs = np.arange(len(xywh) * nm, dtype=np.float32).reshape(len(xywh), nm)
    return np.ascontiguousarray(np.concatenate([xywh, scores, coefs], axis=1).T)


def decode_both(pred: np.ndarray, nc: int, cfg: PredictConfig):
    """(CPU Detections, GPU (xyxy, conf, cls, coefs on the host)) of one raw head, the GPU's checked to be the CPU's,
    dropped candidates included."""
    want = postprocess.decode_raw(pred, nc, cfg)
    got = decode_raw_cuda(pred, nc, cfg.conf, postprocess.allowed_classes(nc, cfg.classes),
                          cfg.multi_label, cfg.iou, cfg.max_det, 0.0 if cfg.agnostic_nms else float(MAX_WH), 30000)
    allowed = postprocess.allowed_classes(nc, cfg.classes)
    assert got[4] == postprocess.select_candidates(pred, nc, cfg.conf, allowed, cfg.multi_label and nc > 1)[3]
    got = (*got[:3], got[3].copy_to_host())
    for g, w in zip(got, [want.xyxy, want.conf, want.cls, want.coefs], strict=True):
        np.testing.assert_array_equal(g, w)
    return want, got


def test_iou_exactly_at_the_threshold_keeps_the_box():
    # A (0, 0, 10, 20) area 200; B (0, 0, 10, 10) inside it, area 100: IoU 100 / 200 = 0.5 exactly in float32, and
    # suppression is IoU > iou (torchvision's rule), so B stays. C (0, 0, 10, 19): IoU 0.95, suppressed by A.
    # D is A's box in class 1: class-aware NMS keeps it.
    xyxy = np.array([[0, 0, 10, 20], [0, 0, 10, 19], [0, 0, 10, 10], [0, 0, 10, 20]], np.float32)
    iou = naive.iou_one_to_many(xyxy[0], xyxy[1:])
    assert iou.dtype == np.float32 and iou[1] == np.float32(0.5) and float(iou[1]) == 0.5 and iou[0] > 0.5
    pred = anchors_head(xyxy, [[0.9, 0], [0.8, 0], [0.7, 0], [0, 0.6]])
    for agnostic in (False, True):
        _, (kept, _, cls, _) = decode_both(pred, 2, PredictConfig(conf=0.25, iou=0.5, agnostic_nms=agnostic))
        if agnostic:  # D overlaps A by IoU 1 and goes; B still stays
            np.testing.assert_array_equal(kept, xyxy[[0, 2]])
        else:
            np.testing.assert_array_equal(kept, xyxy[[0, 2, 3]])
            np.testing.assert_array_equal(cls, [0, 0, 1])


def test_iou_of_float32_0_3_is_above_an_iou_of_0_3():
    # IoU 30 / 100 rounds to float32(0.3) = 0.30000001, compared with the float64 threshold as on the CPU: above 0.3
    xyxy = np.array([[0, 0, 10, 6], [0, 3, 10, 10]], np.float32)  # areas 60 and 70, overlap 30
    iou = naive.iou_one_to_many(xyxy[0], xyxy[1:])[0]
    assert iou == np.float32(0.3) and float(iou) > 0.3
    _, (kept, *_) = decode_both(anchors_head(xyxy, [[0.9], [0.8]]), 1, PredictConfig(conf=0.25, iou=0.3))
    np.testing.assert_array_equal(kept, xyxy[:1])


@pytest.mark.parametrize("multi_label", [False, True])
def test_score_exactly_at_conf_is_not_a_candidate(multi_label):
    # candidates are score > conf, compared in float32 as on the CPU: a score of exactly float32(0.3) is out with
    # conf=0.3 (in float64 it is 0.30000001 > 0.3), the next float32 up is in
    at = np.float32(0.3)
    above = np.nextafter(at, np.float32(1))
    far_apart = [[6, 6, 14, 14], [36, 6, 44, 14], [6, 36, 14, 44], [36, 36, 44, 44]]
    scores = [[at, 0], [above, 0], [0.1, at], [at, above]]  # anchor 3: class 0 at conf, class 1 above it
    want, (_, conf, cls, _) = decode_both(anchors_head(far_apart, scores), 2,
                                          PredictConfig(conf=0.3, iou=0.5, multi_label=multi_label))
    np.testing.assert_array_equal(conf, [above, above])
    np.testing.assert_array_equal(cls, [0, 1])
    np.testing.assert_array_equal(want.coefs, [[2, 3], [6, 7]])  # anchors 1 and 3


def test_decode_raw_with_nothing_above_the_threshold():
    pred = raw_head(np.random.default_rng(0), 2, 3, 40)
    xyxy, conf, cls, coefs, _ = decode_raw_cuda(pred, 2, 0.99, np.ones(2, bool), False, 0.7, 300, float(MAX_WH),
                                                30000)
    assert xyxy.shape == (0, 4) and conf.shape == (0,) and cls.shape == (0,) and coefs.shape == (0, 3)


@pytest.mark.parametrize("settings", [dict(conf=0.3), dict(conf=0.1, classes=(1, 5), max_det=4)])
def test_decode_end2end_is_the_cpu_decode(settings):
    rng = np.random.default_rng(3)
    pred = rng.normal(0, 1, (40, 6 + 5)).astype(np.float32)
    pred[:, 4], pred[:, 5] = rng.uniform(0, 1, 40), rng.integers(0, 3, 40)
    cfg = PredictConfig(**settings)
    want = postprocess.decode_end2end(pred, cfg)
    xyxy, conf, cls, coefs, _ = decode_end2end_cuda(cuda.to_device(pred), cfg.conf, cfg.classes, cfg.max_det)
    assert len(want.conf) > 0
    for got, expected in [(xyxy, want.xyxy), (conf, want.conf), (cls, want.cls), (coefs.copy_to_host(), want.coefs)]:
        np.testing.assert_array_equal(got, expected)


def test_end2end_row_with_conf_exactly_at_the_threshold_is_dropped():
    at = np.float32(0.3)
    pred = np.zeros((5, 6 + 2), np.float32)
    pred[:, :4] = [0, 0, 10, 10]
    pred[:, 4] = [at, np.nextafter(at, np.float32(1)), 0.9, at, 0.29]
    pred[:, 6] = np.arange(5)
    cfg = PredictConfig(conf=0.3)
    want = postprocess.decode_end2end(pred, cfg)
    xyxy, conf, cls, coefs, _ = decode_end2end_cuda(pred, cfg.conf, cfg.classes, cfg.max_det)
    for got, expected in [(xyxy, want.xyxy), (conf, want.conf), (cls, want.cls), (coefs.copy_to_host(), want.coefs)]:
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(coefs.copy_to_host()[:, 0], [1, 2])  # rows 1 and 2 only


def test_decode_raw_drops_non_finite_scores_and_boxes_as_the_cpu():
    # the CPU test's anchors (tests/helpers/random_inputs.py faulty_head), each in its own place of the list
    pred = faulty_head()
    for multi_label in (False, True):
        want, (xyxy, conf, _, coefs) = decode_both(pred, 2, PredictConfig(iou=0.99, multi_label=multi_label))
        np.testing.assert_array_equal(coefs[:, 0], [0, 5, 7] if multi_label else [0, 5])  # 6 has 0's box: NMS
        assert np.isfinite(xyxy).all() and np.isfinite(conf).all()


@pytest.mark.parametrize("settings", CONFIGS)
def test_decode_raw_with_faults_is_the_cpu_decode(settings):
    rng = np.random.default_rng(30 + len(settings))
    pred = raw_head(rng, 3, 4, 160)
    for row, value in [(0, np.inf), (1, np.nan), (2, -2.0), (3, -np.inf), (4, np.inf), (5, np.nan), (6, np.inf)]:
        pred[row, rng.choice(160, 12, replace=False)] = value
    decode_both(pred, 3, PredictConfig(**settings))
    assert postprocess.select_candidates(pred, 3, 0.2, np.ones(3, bool), True)[3] > 20  # faults were candidates


@pytest.mark.parametrize("settings", [dict(), dict(classes=(1,)), dict(max_det=1), dict(classes=(0,))])
def test_decode_end2end_drops_non_finite_and_inverted_rows_as_the_cpu(settings):
    pred = faulty_rows()
    cfg = PredictConfig(**settings)
    want = postprocess.decode_end2end(pred, cfg)
    xyxy, conf, cls, coefs, dropped = decode_end2end_cuda(cuda.to_device(pred), cfg.conf, cfg.classes, cfg.max_det)
    for got, expected in [(xyxy, want.xyxy), (conf, want.conf), (cls, want.cls), (coefs.copy_to_host(), want.coefs)]:
        np.testing.assert_array_equal(got, expected)
    assert dropped == naive.end2end_rows(pred, cfg.conf, cfg.classes, cfg.max_det)[1]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's NumPy scalars; a GPU says nothing
@pytest.mark.parametrize("shape", [(24, 32), (31, 37)])  # upsample 1 and 4
def test_non_finite_coefficients_and_prototypes_are_background_as_on_the_cpu(shape):
    rng = np.random.default_rng(9)
    protos = random_prototypes(rng, (8, 8), nm=4)
    protos[1, 2:4, :] = np.nan
    protos[2, :, 6] = np.inf
    boxes = np.array([[0, 0, shape[1], shape[0]]] * 4, np.float32)
    coefs = rng.normal(0, 1, (4, 4)).astype(np.float32)
    coefs[1, 0], coefs[2, 3], coefs[3, 2] = np.nan, np.inf, 0.0  # inf * 0 is NaN too
    f, crop = mask_geometry((8, 8), shape)
    bounds = box_pixels(boxes, shape)
    flat, offsets, _ = masks_in_boxes_cuda(cuda.to_device(protos), cuda.to_device(coefs), bounds, f, crop, shape)
    want, _ = masks_in_boxes(protos, coefs, bounds, f, crop, shape)
    np.testing.assert_array_equal(flat.copy_to_host(), want)
    assert not want[offsets[1] : offsets[2]].any()  # a NaN coefficient: every logit NaN, all background
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(want.reshape(4, *shape), (full_frame_logits(protos, coefs, shape) > 0))


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
    for i, (crop, box, region) in enumerate(zip(crops, boxes, regions, strict=True)):
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

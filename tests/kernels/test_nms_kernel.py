"""Candidate selection, box decoding and NMS against NumPy and torchvision; decode_raw / decode_end2end against
Ultralytics' non_max_suppression."""

from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np
import pytest

import edgeseg.postprocess.cpu
from edgeseg.config import PredictConfig
from edgeseg.kernels.nms import nms, select_candidates, xywh_to_xyxy
from edgeseg.postprocess.cpu import MAX_NMS_CANDIDATES, MAX_WH, decode_end2end, decode_raw
from tests.helpers import naive
from tests.helpers.random_inputs import faulty_head, faulty_rows

NC, NM, ANCHORS = 80, 32, 2100


def clustered_boxes(rng: np.random.Generator, n: int, clusters: int = 20, size: float = 640) -> np.ndarray:
    """(n, 4) float32 xyxy boxes around a few centres, so that many overlap."""
    centres = rng.uniform(0, size, (clusters, 2))
    xy = centres[rng.integers(0, clusters, n)] + rng.normal(0, 8, (n, 2))
    wh = rng.uniform(4, 120, (n, 2))
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)


def raw_head(rng: np.random.Generator, nc: int = NC, nm: int = NM, anchors: int = ANCHORS,
             levels: int | None = None) -> np.ndarray:
    """A random raw head output (4 + nc + nm, A) float32: clustered xywh, sparse sigmoid class scores, coefficients.

    levels: quantize the scores to that many steps, for exact ties within and across anchors.
    """
    centres = rng.uniform(0, 640, (25, 2))
    xy = centres[rng.integers(0, 25, anchors)] + rng.normal(0, 10, (anchors, 2))
    wh = rng.uniform(4, 200, (anchors, 2))
    scores = 1 / (1 + np.exp(-rng.normal(-6, 2, (nc, anchors))))  # ~0.7 % of (anchor, class) above 0.25
    if levels:
        scores = np.round(scores * levels) / levels
    coefs = rng.normal(0, 1, (nm, anchors))
    return np.concatenate([xy.T, wh.T, scores, coefs]).astype(np.float32)


def ultralytics_nms(pred: np.ndarray, nc: int, cfg: PredictConfig, max_nms: int = 30000,
                    end2end: bool = False) -> np.ndarray:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")  # imported, so Ultralytics uses torchvision.ops.nms as it does in practice
    from ultralytics.utils.nms import non_max_suppression

    out = non_max_suppression(torch.from_numpy(pred[None]), cfg.conf, cfg.iou,
                              classes=list(cfg.classes) if cfg.classes is not None else None,
                              agnostic=cfg.agnostic_nms, multi_label=cfg.multi_label, max_det=cfg.max_det, nc=nc,
                              max_nms=max_nms, end2end=end2end)
    return out[0].numpy()


def assert_same_detections(det, expected: np.ndarray) -> None:
    """Same boxes, scores, classes and coefficients, in the same order, bit for bit."""
    assert len(det.conf) == len(expected), f"{len(det.conf)} detections, Ultralytics has {len(expected)}"
    np.testing.assert_array_equal(det.xyxy, expected[:, :4])
    np.testing.assert_array_equal(det.conf, expected[:, 4])
    np.testing.assert_array_equal(det.cls, expected[:, 5].astype(np.int64))
    np.testing.assert_array_equal(det.coefs, expected[:, 6:])
    assert det.xyxy.dtype == det.conf.dtype == det.coefs.dtype == np.float32 and det.cls.dtype == np.int64


# --- select_candidates ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("seed, conf, levels, allowed_fraction", [
    (0, 0.25, None, 1.0),
    (1, 0.1, None, 0.5),
    (2, 0.25, 8, 1.0),  # exact ties between classes of one anchor
    (3, 0.5, 4, 0.3),
    (4, 0.0, 16, 1.0),  # conf 0: every non-zero score
])
def test_select_candidates_matches_numpy(multi_label, seed, conf, levels, allowed_fraction):
    rng = np.random.default_rng(seed)
    pred = raw_head(rng, nc=12, nm=4, anchors=400, levels=levels)
    pred[4:16] = pred[4:16] ** 0.25  # denser scores than the head default, so that every path is exercised
    allowed = rng.random(12) < allowed_fraction
    anchors, classes, scores, dropped = select_candidates(pred, 12, conf, allowed, multi_label)
    exp_anchors, exp_classes, exp_scores, exp_dropped = naive.select_candidates(pred, 12, conf, allowed, multi_label)
    assert len(anchors) > 10 and dropped == exp_dropped == 0
    np.testing.assert_array_equal(anchors, exp_anchors)
    np.testing.assert_array_equal(classes, exp_classes)
    np.testing.assert_array_equal(scores, exp_scores)
    assert anchors.dtype == classes.dtype == np.int64 and scores.dtype == np.float32


def test_select_candidates_ties_keep_the_first_class():
    pred = np.zeros((4 + 6, 3), np.float32)
    pred[4 + 2, 0] = pred[4 + 5, 0] = 0.75  # anchor 0: classes 2 and 5 tie
    pred[4 + 0, 1] = pred[4 + 1, 1] = pred[4 + 4, 1] = 0.5  # anchor 1: three-way tie
    anchors, classes, scores, _ = select_candidates(pred, 6, 0.25, np.ones(6, bool))
    assert anchors.tolist() == [0, 1] and classes.tolist() == [2, 0] and scores.tolist() == [0.75, 0.5]
    anchors, classes, _, _ = select_candidates(pred, 6, 0.25, np.ones(6, bool), multi_label=True)
    assert anchors.tolist() == [0, 0, 1, 1, 1] and classes.tolist() == [2, 5, 0, 1, 4]


def test_select_candidates_threshold_is_strict_in_float32():
    conf = 0.3  # float32(0.3) > 0.3: the comparison is made in float32, as PyTorch does on a float32 tensor
    at = np.float32(conf)
    pred = np.zeros((4 + 1, 3), np.float32)
    pred[4] = [np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.float32(1))]
    anchors, _, _, _ = select_candidates(pred, 1, conf, np.ones(1, bool))
    assert anchors.tolist() == [2]


def test_select_candidates_classes_filter_applies_to_the_best_class():
    # As Ultralytics: the best class is chosen first, then filtered; a lower allowed class does not step in
    pred = np.zeros((4 + 2, 1), np.float32)
    pred[4:, 0] = [0.8, 0.9]
    allowed = np.array([True, False])
    assert len(select_candidates(pred, 2, 0.25, allowed)[0]) == 0
    anchors, classes, scores, _ = select_candidates(pred, 2, 0.25, allowed, multi_label=True)
    assert anchors.tolist() == [0] and classes.tolist() == [0] and scores.tolist() == [np.float32(0.8)]


def test_select_candidates_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        select_candidates(np.zeros((4 + 3, 5), np.float32), 4, 0.25, np.ones(4, bool))  # too few rows
    with pytest.raises(ValueError, match="must be"):
        select_candidates(np.zeros((4 + 3, 5), np.float32), 3, 0.25, np.ones(2, bool))  # allowed too short
    with pytest.raises(ValueError, match="must be"):
        select_candidates(np.zeros((4 + 3,), np.float32), 3, 0.25, np.ones(3, bool))  # 1-D


@pytest.mark.parametrize("multi_label, anchors, classes, dropped", [
    (False, [0, 5], [0, 0], 5),  # 1, 2, 3, 4 and 6 (its best class scores inf)
    (True, [0, 5, 6, 7], [0, 0, 0, 1], 5),  # anchor 6's class 0 and anchor 7's class 1 are fine
])
def test_select_candidates_drops_non_finite_scores_and_boxes(multi_label, anchors, classes, dropped):
    pred = faulty_head()
    got = select_candidates(pred, 2, 0.25, np.ones(2, bool), multi_label)
    assert got[0].tolist() == anchors and got[1].tolist() == classes and got[3] == dropped
    assert np.isfinite(got[2]).all()
    want = naive.select_candidates(pred, 2, 0.25, np.ones(2, bool), multi_label)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    # a filtered-out class is no candidate, so nothing of it is dropped: with class 1 alone, only anchor 6's inf
    assert select_candidates(pred, 2, 0.25, np.array([False, True]), multi_label)[3] == 1


@pytest.mark.parametrize("multi_label", [False, True])
def test_select_candidates_with_faults_matches_numpy(multi_label):
    rng = np.random.default_rng(21)
    pred = raw_head(rng, nc=5, nm=3, anchors=600)
    pred[4:9] **= 0.25
    for row, value in [(0, np.inf), (1, -np.inf), (2, np.nan), (2, -3.0), (3, -1e-6), (3, np.inf), (4, np.inf),
                       (6, np.nan), (8, np.inf), (5, -np.inf)]:
        pred[row, rng.choice(600, 30, replace=False)] = value
    got = select_candidates(pred, 5, 0.3, np.ones(5, bool), multi_label)
    want = naive.select_candidates(pred, 5, 0.3, np.ones(5, bool), multi_label)
    assert got[3] > 100 and len(got[0]) > 100
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_decode_raw_keeps_only_finite_boxes_and_logs_the_dropped(caplog):
    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess.cpu"):
        det = decode_raw(faulty_head(), 2, PredictConfig(iou=0.99))
    assert "dropped 5 candidates with non-finite or negative boxes" in caplog.messages
    np.testing.assert_array_equal(det.coefs[:, 0], [0, 5])
    assert np.isfinite(det.xyxy).all() and np.isfinite(det.conf).all()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess.cpu"):
        decode_raw(raw_head(np.random.default_rng(22)), NC, PredictConfig())
    assert not [m for m in caplog.messages if m.startswith("dropped")]  # nothing said when nothing is dropped


# --- xywh_to_xyxy -----------------------------------------------------------------------------------------------------

def test_xywh_to_xyxy_matches_numpy():
    rng = np.random.default_rng(5)
    pred = raw_head(rng, nc=3, nm=2, anchors=300)
    pred[2:4, :10] = 0  # zero-size boxes
    pred[:2, 10:20] = rng.uniform(-50, 0, (2, 10))  # centres off the image
    anchors = np.concatenate([rng.permutation(300)[:150], [0, 0, 299]])  # any order, repeats
    out = xywh_to_xyxy(pred, anchors)
    assert out.dtype == np.float32 and out.shape == (153, 4)
    np.testing.assert_array_equal(out, naive.xywh_to_xyxy(pred, anchors))
    assert xywh_to_xyxy(pred, np.empty(0, np.int64)).shape == (0, 4)


def test_xywh_to_xyxy_matches_ultralytics():
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import xywh2xyxy

    pred = raw_head(np.random.default_rng(6), nc=3, nm=2, anchors=500)
    expected = xywh2xyxy(torch.from_numpy(pred[:4].T.copy())).numpy()
    np.testing.assert_array_equal(xywh_to_xyxy(pred, np.arange(500)), expected)


# --- nms --------------------------------------------------------------------------------------------------------------

def box_set(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "clusters":
        boxes = clustered_boxes(rng, 300)
    elif kind == "clusters_large":
        boxes = clustered_boxes(rng, 2000, clusters=40)
    elif kind == "identical":  # one box many times, and equal scores: the first in input order wins
        boxes = np.tile(np.array([[10, 20, 110, 220]], np.float32), (40, 1))
        return boxes, np.repeat(rng.random(8).astype(np.float32), 5)
    elif kind == "zero_area":  # points and lines (0/0 IoU between them), among ordinary boxes
        boxes = clustered_boxes(rng, 200, clusters=5)
        boxes[::3, 2] = boxes[::3, 0]
        boxes[1::3, 3] = boxes[1::3, 1]
        boxes[:10] = np.array([50, 50, 50, 50], np.float32)
    elif kind == "integer_grid":  # whole-pixel boxes: many exactly equal IoUs and equal scores
        xy = rng.integers(0, 20, (400, 2)) * 4
        wh = rng.integers(1, 6, (400, 2)) * 4
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        return boxes, (rng.integers(0, 10, 400) / 10).astype(np.float32)
    elif kind == "scattered":
        xy = rng.uniform(0, 4000, (1500, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 300, (1500, 2))], axis=1).astype(np.float32)
    else:
        raise ValueError(kind)
    return boxes, rng.random(len(boxes)).astype(np.float32)


BOX_SETS = ["clusters", "clusters_large", "identical", "zero_area", "integer_grid", "scattered"]


@pytest.mark.parametrize("kind", BOX_SETS)
@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_nms_matches_numpy_and_torchvision(kind, iou):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    boxes, scores = box_set(kind, np.random.default_rng(BOX_SETS.index(kind)))
    keep = nms(boxes, scores, iou, max_det=10**9)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, naive.nms(boxes, scores, iou))
    np.testing.assert_array_equal(keep, torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                                            iou).numpy())
    if kind.startswith("clusters"):
        assert 0 < len(keep) < len(boxes)  # the set really tests suppression


def test_nms_keeps_a_box_whose_iou_equals_the_threshold():
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1], [0, 0, 3, 1]], np.float32)  # IoU with the first: 0.5, 0.75
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.5, 100).tolist() == [0, 1]  # suppressed only when IoU > threshold
    assert nms(boxes, scores, 0.75, 100).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.49, 100).tolist() == [0]


def test_nms_compares_the_float32_iou_with_the_threshold_as_a_double():
    # IoU 3/10 is float32(0.3) = 0.30000001 > 0.3: torchvision suppresses, a float32 comparison would not
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    boxes = np.array([[0, 0, 10, 1], [0, 0, 3, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.3).tolist() == [0]
    assert nms(boxes, scores, 0.3, 100).tolist() == [0]
    assert nms(boxes, scores, float(np.float32(0.3)), 100).tolist() == [0, 1]


def test_nms_max_det_truncates_the_full_result():
    boxes, scores = box_set("clusters", np.random.default_rng(11))
    full = nms(boxes, scores, 0.5, max_det=10**9)
    for max_det in (1, 2, 7, 50, len(full) - 1, len(full), len(full) + 5):
        np.testing.assert_array_equal(nms(boxes, scores, 0.5, max_det), full[:max_det])
    assert nms(boxes, scores, 0.5, 0).shape == (0,)
    assert nms(np.empty((0, 4), np.float32), np.empty(0, np.float32), 0.5, 300).shape == (0,)


def test_nms_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        nms(np.zeros((3, 5), np.float32), np.zeros(3, np.float32), 0.5, 10)
    with pytest.raises(ValueError, match="must be"):
        nms(np.zeros((3, 4), np.float32), np.zeros(2, np.float32), 0.5, 10)


# --- decode_raw and decode_end2end against Ultralytics ----------------------------------------------------------------

def test_constants_are_ultralytics_defaults():
    from ultralytics.utils.nms import non_max_suppression

    defaults = inspect.signature(non_max_suppression).parameters
    assert MAX_NMS_CANDIDATES == defaults["max_nms"].default == 30000
    assert MAX_WH == defaults["max_wh"].default


DECODE_CONFIGS = [
    PredictConfig(),
    PredictConfig(conf=0.1, iou=0.5, max_det=3000),  # NMS result smaller than max_det
    PredictConfig(conf=0.4, iou=0.3, max_det=3000),
    PredictConfig(classes=(0, 3, 79, 200)),  # 200 is no class of this model
    PredictConfig(classes=(5,), max_det=3000),
    PredictConfig(agnostic_nms=True, max_det=3000),
    PredictConfig(agnostic_nms=True, iou=0.9),
    PredictConfig(multi_label=True, conf=0.2, max_det=3000),
    PredictConfig(multi_label=True, agnostic_nms=True, iou=0.3, max_det=50, classes=(1, 2, 5)),
    PredictConfig(max_det=7),
    PredictConfig(max_det=1, agnostic_nms=True),
    PredictConfig(conf=0.99),  # nothing left
]


@pytest.mark.parametrize("cfg", DECODE_CONFIGS,
                         ids=lambda c: f"conf{c.conf}-iou{c.iou}-cls{c.classes}-agn{int(c.agnostic_nms)}"
                                       f"-ml{int(c.multi_label)}-max{c.max_det}")
def test_decode_raw_matches_ultralytics(cfg):
    pred = raw_head(np.random.default_rng(int(cfg.conf * 100 + cfg.iou * 10 + cfg.max_det)))
    det = decode_raw(pred, NC, cfg)
    assert_same_detections(det, ultralytics_nms(pred, NC, cfg))
    assert det.coefs.shape == (len(det.conf), NM)


@pytest.mark.parametrize("multi_label", [False, True])
def test_decode_raw_with_tied_scores_matches_ultralytics(multi_label):
    # quantized scores: ties in the best class and between boxes; NMS must order them as torchvision does
    pred = raw_head(np.random.default_rng(12), levels=8)
    cfg = PredictConfig(conf=0.2, multi_label=multi_label, max_det=1000)
    assert_same_detections(decode_raw(pred, NC, cfg), ultralytics_nms(pred, NC, cfg))


@pytest.mark.parametrize("nc", [1, 2])
def test_decode_raw_few_classes_matches_ultralytics(nc):
    # multi_label is ignored for a one-class model, as in Ultralytics
    pred = raw_head(np.random.default_rng(13), nc=nc, nm=NM, anchors=1000)
    pred[4 : 4 + nc] **= 0.1
    for cfg in (PredictConfig(multi_label=True, max_det=1000), PredictConfig(max_det=1000, iou=0.5)):
        assert_same_detections(decode_raw(pred, nc, cfg), ultralytics_nms(pred, nc, cfg))


@pytest.mark.parametrize("cap", [1, 37, 200, 500])
@pytest.mark.parametrize("multi_label", [False, True])
def test_decode_raw_caps_candidates_before_nms_like_ultralytics(monkeypatch, cap, multi_label):
    monkeypatch.setattr(edgeseg.postprocess.cpu, "MAX_NMS_CANDIDATES", cap)
    pred = raw_head(np.random.default_rng(14 + cap))  # continuous scores: no ties at the cap (see the note below)
    cfg = PredictConfig(conf=0.1, multi_label=multi_label, max_det=3000)
    det = decode_raw(pred, NC, cfg)
    assert_same_detections(det, ultralytics_nms(pred, NC, cfg, max_nms=cap))
    # the cap bites: there are more candidates than the cap, and without it more boxes survive
    assert len(select_candidates(pred, NC, cfg.conf, np.ones(NC, bool), multi_label)[0]) > cap >= len(det.conf)
    monkeypatch.setattr(edgeseg.postprocess.cpu, "MAX_NMS_CANDIDATES", 30000)
    assert len(decode_raw(pred, NC, cfg).conf) > len(det.conf)


def test_decode_raw_without_candidates_gives_empty_detections():
    pred = raw_head(np.random.default_rng(15))
    pred[4 : 4 + NC] = 0.0
    det = decode_raw(pred, NC, PredictConfig())
    assert det.xyxy.shape == (0, 4) and det.conf.shape == (0,) and det.cls.shape == (0,) and det.coefs.shape == (0, NM)
    assert ultralytics_nms(pred, NC, PredictConfig()).shape == (0, 6 + NM)


def end2end_rows(rng: np.random.Generator, rows: int = 300, nc: int = NC, nm: int = NM) -> np.ndarray:
    """An NMS-in-graph output (K, 6 + nm): xyxy, conf (sorted descending, as the models emit), cls, coefs."""
    xy = rng.uniform(0, 600, (rows, 2))
    conf = np.sort(rng.random(rows) ** 3)[::-1]
    cls = rng.integers(0, nc, rows)
    return np.concatenate([xy, xy + rng.uniform(1, 100, (rows, 2)), conf[:, None], cls[:, None],
                           rng.normal(size=(rows, nm))], axis=1).astype(np.float32)


@pytest.mark.parametrize("cfg", [
    PredictConfig(),
    PredictConfig(conf=0.05),
    PredictConfig(conf=0.0, max_det=50),
    PredictConfig(classes=(0, 1, 2, 3, 4, 5, 6, 7), conf=0.01),
    PredictConfig(classes=(200,)),
    PredictConfig(max_det=3),
    PredictConfig(conf=1.0),
])
def test_decode_end2end_matches_ultralytics(cfg):
    pred = end2end_rows(np.random.default_rng(16))
    det = decode_end2end(pred, cfg)
    assert_same_detections(det, ultralytics_nms(pred, NC, cfg, end2end=True))


def test_decode_end2end_keeps_row_order_and_unsorted_rows():
    rng = np.random.default_rng(17)
    pred = end2end_rows(rng)[rng.permutation(300)]  # not sorted by conf: rows are taken in order, not re-sorted
    cfg = PredictConfig(conf=0.1, max_det=20)
    det = decode_end2end(pred, cfg)
    rows = np.flatnonzero(pred[:, 4] > np.float32(0.1))[:20]
    np.testing.assert_array_equal(det.conf, pred[rows, 4])
    assert_same_detections(det, ultralytics_nms(pred, NC, cfg, end2end=True))


@pytest.mark.parametrize("cfg, rows, dropped", [
    (PredictConfig(), [0, 8], 6),
    (PredictConfig(classes=(1,)), [0, 8], 5),  # the NaN class is no class of the filter
    (PredictConfig(max_det=1), [0], 6),  # rows after max_det are still counted
    (PredictConfig(classes=(0,)), [], 0),
])
def test_decode_end2end_drops_non_finite_and_inverted_rows(caplog, cfg, rows, dropped):
    pred = faulty_rows()
    with caplog.at_level(logging.DEBUG, logger="edgeseg.postprocess.cpu"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no cast warning for the NaN class
        det = decode_end2end(pred, cfg)
    np.testing.assert_array_equal(det.coefs[:, 0], rows)
    assert det.cls.tolist() == [1] * len(rows) and np.isfinite(det.xyxy).all() and np.isfinite(det.conf).all()
    want_rows, want_dropped = naive.end2end_rows(pred, cfg.conf, cfg.classes, cfg.max_det)
    assert want_rows.tolist() == rows and want_dropped == dropped
    said = [m for m in caplog.messages if m.startswith("dropped")]
    assert said == ([f"dropped {dropped} candidates with non-finite or negative boxes"] if dropped else [])


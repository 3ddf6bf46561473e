"""Outlines traced on box-sized crops: equal to OpenCV on the full frame, and to Ultralytics' masks.xy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeseg import Segmenter
from edgeseg.outputs.contours import join_contours, object_polygon, outer_contours
from edgeseg.results import Masks
from tests.helpers.common import mask_iou

ultralytics_ops = pytest.importorskip("ultralytics.utils.ops")


def random_blobs(rng: np.random.Generator, shape=(60, 80), blobs=4) -> np.ndarray:
    """(H, W) uint8 0/1: a few filled ellipses and rectangles, some touching the border, some apart."""
    mask = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(1, blobs + 1)):
        cx, cy = int(rng.integers(-5, shape[1] + 5)), int(rng.integers(-5, shape[0] + 5))
        if rng.random() < 0.5:
            axes = (int(rng.integers(1, 15)), int(rng.integers(1, 15)))
            cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(mask, (cx, cy), (cx + int(rng.integers(0, 12)), cy + int(rng.integers(0, 12))), 1, -1)
    return mask


def crop_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's bounding-box crop and its origin (x0, y0), as Masks stores it (grown by a random margin)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = max(xs.min() - 2, 0), max(ys.min() - 1, 0)
    return mask[y0 : ys.max() + 3, x0 : xs.max() + 2], np.array([x0, y0], np.int64)


def test_contours_on_a_crop_equal_contours_on_the_frame():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        mask = random_blobs(rng)
        if not mask.any():
            continue
        full, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        ours = outer_contours(*crop_of(mask))
        assert len(ours) == len(full)
        for a, b in zip(ours, full, strict=True):
            np.testing.assert_array_equal(a, b.reshape(-1, 2))
        checked += len(full) > 1
    assert checked > 50  # many masks had several contours


def test_strategy_all_equals_ultralytics_masks2segments():
    rng = np.random.default_rng(1)
    masks = [m for m in (random_blobs(rng, blobs=6) for _ in range(300)) if m.any()]
    expected = ultralytics_ops.masks2segments(np.stack(masks), strategy="all")
    several = 0
    for mask, want in zip(masks, expected, strict=True):
        got = object_polygon(*crop_of(mask), strategy="all")
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        several += len(outer_contours(mask, (0, 0))) > 2
    assert several > 30  # joins of three or more contours (middle contours walked both ways) were exercised


def test_strategy_largest_takes_the_largest_area():
    mask = np.zeros((40, 60), np.uint8)
    cv2.circle(mask, (10, 10), 6, 1, -1)  # many vertices, small area
    mask[20:38, 25:58] = 1  # 4 vertices, large area
    polygon = object_polygon(mask, (0, 0), "largest")
    assert sorted(map(tuple, polygon.tolist())) == [(25, 20), (25, 37), (57, 20), (57, 37)]


def test_single_pixels_and_lines_and_empty_masks():
    mask = np.zeros((10, 10), np.uint8)
    assert object_polygon(mask, (0, 0)).shape == (0, 2)
    assert object_polygon(np.zeros((0, 0), np.uint8), (3, 4)).shape == (0, 2)
    mask[4, 4] = 1
    np.testing.assert_array_equal(object_polygon(mask, (10, 20)), [[14, 24]])
    mask[7, 1:6] = 1  # a line: zero area, more points than the single pixel
    assert len(object_polygon(mask, (0, 0), "largest")) == 2
    with pytest.raises(ValueError, match="strategy"):
        object_polygon(mask, (0, 0), "biggest")


def test_join_contours_visits_every_point():
    rng = np.random.default_rng(2)
    for _ in range(50):
        contours = [rng.integers(0, 100, (int(rng.integers(1, 8)), 2)).astype(np.int32)
                    for _ in range(int(rng.integers(2, 6)))]
        joined = join_contours(contours)
        points = {tuple(p) for p in joined.tolist()}
        assert all(tuple(p) in points for c in contours for p in c.tolist())
        # each contour is walked once (plus its closing point) and each bridge point once more
        assert len(joined) == sum(len(c) + 1 for c in contours) + max(0, len(contours) - 2)


def test_masks_xy_and_xyn():
    crop = np.zeros((5, 6), np.uint8)
    crop[1:4, 2:5] = 1
    masks = Masks((crop,), np.array([[10, 20]], np.int64), (50, 100))
    assert sorted(map(tuple, masks.xy[0].tolist())) == [(12, 21), (12, 23), (14, 21), (14, 23)]
    assert masks.xy is masks.xy  # traced once
    np.testing.assert_allclose(masks.xyn[0], masks.xy[0] / [100, 50])
    assert masks[0].xy[0].shape == (4, 2)


def fill(polygon: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    if len(polygon):
        cv2.fillPoly(out, [polygon.astype(np.int32)], 1)
    return out


@pytest.mark.parametrize("size", [None, (1280, 720)])
def test_masks_xy_match_ultralytics(shapes_onnx, val_images, size):
    """Same model, same images: masks.xy (all contours joined, Ultralytics' default) gives Ultralytics' polygons
    point for point wherever the masks agree, and the largest-area outline alone covers them."""
    ultralytics = pytest.importorskip("ultralytics")
    yolo, seg = ultralytics.YOLO(str(shapes_onnx), task="segment"), Segmenter(shapes_onnx)
    ious, vertex_ratios, identical, compared = [], [], 0, 0
    for path in val_images[:15]:
        image = cv2.imread(str(path))
        if size:
            image = cv2.resize(image, size)
        ref, ours = yolo.predict(image, retina_masks=True, verbose=False)[0], seg(image)[0]
        assert len(ref) == len(ours)
        order = [int(np.argmin(np.abs(ours.boxes.xyxy - b).sum(1))) for b in ref.boxes.xyxy.numpy()]
        ref_masks = ref.masks.data.numpy().astype(np.uint8)
        everything = ours.masks.xy
        largest = ours.masks.contours("largest")
        for k, j in enumerate(order):
            want, got = ref.masks.xy[k], largest[j]
            ious.append(mask_iou(fill(want, ours.orig_shape), fill(got, ours.orig_shape)))
            vertex_ratios.append((len(got) + 1) / (len(want) + 1))
            if np.array_equal(ref_masks[k], ours.masks.dense(j)):
                compared += 1
                identical += np.array_equal(everything[j], want)
    assert np.mean(ious) >= 0.97 and min(ious) > 0.5
    assert 0.1 < min(vertex_ratios) and max(vertex_ratios) < 10
    assert compared > 50 and identical == compared

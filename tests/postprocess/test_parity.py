"""Parity with Ultralytics' own predictions (retina_masks=True) on the same ONNX models and images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeseg import Segmenter
from tests.helpers.common import mask_iou

ultralytics = pytest.importorskip("ultralytics")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) with boxes b (n, 4)."""
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def assert_parity(ref, ours, where: str, min_matched: float = 0.99, min_mask_iou: float = 0.98) -> int:
    """Every reference detection matched by class with box IoU >= 0.99, mean mask IoU >= 0.98, no extras."""
    ref_xyxy = ref.boxes.xyxy.numpy()
    ref_cls = ref.boxes.cls.numpy().astype(np.int64)
    ref_masks = ref.masks.data.numpy().astype(bool) if ref.masks is not None else np.zeros((0, *ref.orig_shape), bool)
    our_masks = ours.masks.data.astype(bool)
    assert ours.orig_shape == tuple(ref.orig_shape), where
    used = np.zeros(len(ours), bool)
    ious = []
    for k in range(len(ref_xyxy)):
        candidates = np.flatnonzero((ours.boxes.cls == ref_cls[k]) & ~used)
        if not len(candidates):
            continue
        overlap = box_iou(ref_xyxy[k], ours.boxes.xyxy[candidates])
        best = int(np.argmax(overlap))
        if overlap[best] >= 0.99:
            used[candidates[best]] = True
            ious.append(mask_iou(ref_masks[k], our_masks[candidates[best]]))
    n = len(ref_xyxy)
    assert len(ious) >= min_matched * n, f"{where}: matched {len(ious)} of {n} Ultralytics detections"
    assert len(ours) - len(ious) <= (1 - min_matched) * n, f"{where}: {len(ours) - len(ious)} extra detections"
    if ious:
        assert np.mean(ious) >= min_mask_iou, f"{where}: mean mask IoU {np.mean(ious):.4f}"
    return n


@pytest.fixture(scope="module")
def shapes_pair(shapes_onnx):
    return ultralytics.YOLO(str(shapes_onnx), task="segment"), Segmenter(shapes_onnx)


def test_parity_on_every_validation_image(shapes_pair, val_images):
    yolo, seg = shapes_pair
    total = 0
    for path in val_images:
        ref = yolo.predict(str(path), retina_masks=True, verbose=False, conf=0.25, iou=0.7)[0]
        ours = seg(path)[0]
        assert ours.path == str(path)
        total += assert_parity(ref, ours, path.name)
    assert total > 500  # the shared split holds ~800 objects: the comparison is not vacuous


@pytest.mark.parametrize("size", [(1280, 720), (480, 640), (640, 480), (700, 500), (517, 333), (1920, 1080), (97, 61)])
def test_parity_on_resized_images(shapes_pair, val_images, size):
    """Other aspect ratios exercise every letterbox padding and Ultralytics' 2x/4x prototype upsample."""
    yolo, seg = shapes_pair
    for path in val_images[:6]:
        image = cv2.resize(cv2.imread(str(path)), size, interpolation=cv2.INTER_LINEAR)
        ref = yolo.predict(image, retina_masks=True, verbose=False)[0]
        ours = seg(image)[0]
        assert ours.orig_shape == (size[1], size[0])
        assert_parity(ref, ours, f"{path.name} at {size}")


def test_parity_random_80_class_model_many_boxes(random80_onnx, val_images):
    """An untrained 80-class model at a tiny threshold: hundreds of candidates, heavy class-aware NMS."""
    yolo = ultralytics.YOLO(str(random80_onnx), task="segment")
    for conf, agnostic in ((1e-5, False), (1e-5, True), (5e-5, False)):
        seg = Segmenter(random80_onnx, conf=conf, agnostic_nms=agnostic)
        kept = 0
        for path in val_images[:8]:
            ref = yolo.predict(str(path), retina_masks=True, verbose=False, conf=conf, agnostic_nms=agnostic)[0]
            kept += assert_parity(ref, seg(path)[0], f"{path.name} conf={conf} agnostic={agnostic}")
        assert kept > 0


def test_parity_classes_and_max_det(shapes_pair, shapes_onnx, val_images):
    yolo, _ = shapes_pair
    seg = Segmenter(shapes_onnx, conf=0.1, classes=[1, 4], max_det=5)
    for path in val_images[:10]:
        ref = yolo.predict(str(path), retina_masks=True, verbose=False, conf=0.1, classes=[1, 4], max_det=5)[0]
        ours = seg(path)[0]
        assert set(ours.boxes.cls.tolist()) <= {1, 4} and len(ours) <= 5
        assert_parity(ref, ours, path.name)


def test_parity_dynamic_model_and_batches(shapes_dynamic_onnx, val_images):
    """Dynamic shapes: alone or in a batch of one shape, an image is padded to a multiple of the stride only;
    in a batch of mixed shapes, to the full square. Both as Ultralytics does, batch for batch."""
    yolo = ultralytics.YOLO(str(shapes_dynamic_onnx), task="segment")
    images = [cv2.imread(str(p)) for p in val_images[:6]]
    images[1] = cv2.resize(images[1], (320, 200))
    images[4] = cv2.resize(images[4], (250, 400))
    single = Segmenter(shapes_dynamic_onnx, imgsz=320)
    batched = Segmenter(shapes_dynamic_onnx, imgsz=320, batch=3)
    refs_batched = yolo.predict(images, retina_masks=True, verbose=False, imgsz=320, batch=3)
    for k, (image, in_batch) in enumerate(zip(images, batched(images), strict=True)):
        ref = yolo.predict(image, retina_masks=True, verbose=False, imgsz=320)[0]
        assert_parity(ref, single(image)[0], f"image {k}")
        assert_parity(refs_batched[k], in_batch, f"image {k} in a batch of 3")
    same_shape = [cv2.imread(str(p)) for p in val_images[6:9]]
    for one, in_batch in zip(single(same_shape), batched(same_shape), strict=True):
        np.testing.assert_array_equal(one.boxes.xyxy, in_batch.boxes.xyxy)
        np.testing.assert_array_equal(one.masks.data, in_batch.masks.data)


def test_parity_nms_in_graph(shapes_nms_onnx, val_images):
    """NMS exported into the graph: output (1, 300, 38) rows of box, score, class, coefficients."""
    seg = Segmenter(shapes_nms_onnx)
    assert seg.end2end
    yolo = ultralytics.YOLO(str(shapes_nms_onnx), task="segment")
    total = 0
    for path in val_images[:20]:
        ref = yolo.predict(str(path), retina_masks=True, verbose=False)[0]
        total += assert_parity(ref, seg(path)[0], path.name)
    assert total > 50


def test_end_to_end_yolo26(yolo26_onnx, val_images):
    """An end-to-end YOLO26-seg head (random weights): loads, runs, and agrees with Ultralytics."""
    seg = Segmenter(yolo26_onnx, conf=1e-5)
    assert seg.end2end and seg.num_classes == 80
    yolo = ultralytics.YOLO(str(yolo26_onnx), task="segment")
    rng = np.random.default_rng(0)
    images = [cv2.imread(str(val_images[0])), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)]
    for image in images:
        ours = seg(image)[0]
        assert ours.masks.data.shape == (len(ours), *image.shape[:2])
        assert_parity(yolo.predict(image, retina_masks=True, verbose=False, conf=1e-5)[0], ours, "yolo26")

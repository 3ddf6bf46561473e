"""Results to and from supervision.Detections: what supervision's own from_ultralytics gives, its annotators on it,
and round trips that keep every box, class, score, track ID and mask pixel."""

from __future__ import annotations

import dataclasses
import sys

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.results import Boxes, Masks, Results

sv = pytest.importorskip("supervision")


@pytest.fixture(scope="module")
def scenes(shapes_onnx, val_images):
    seg = Segmenter(shapes_onnx)
    results = [seg(path)[0] for path in val_images[:4]]
    results.append(seg(cv2.resize(cv2.imread(str(val_images[4])), (517, 333)))[0])
    assert sum(len(r) for r in results) > 20
    return results


def test_to_supervision_equals_supervisions_from_ultralytics(shapes_onnx, val_images, scenes):
    ultralytics = pytest.importorskip("ultralytics")
    yolo = ultralytics.YOLO(str(shapes_onnx), task="segment")
    for path, r in zip(val_images[:4], scenes, strict=False):
        want = sv.Detections.from_ultralytics(yolo.predict(str(path), retina_masks=True, verbose=False)[0])
        got = r.to_supervision()
        assert isinstance(got, sv.Detections) and len(got) == len(r)
        assert got.mask.dtype == bool and got.mask.shape == (len(r), *r.orig_shape)
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.mask, want.mask)
        np.testing.assert_array_equal(got.confidence, want.confidence)
        np.testing.assert_array_equal(got.class_id, want.class_id)
        np.testing.assert_array_equal(got.data["class_name"], want.data["class_name"])
        assert got.tracker_id is None and want.tracker_id is None


def test_supervisions_annotators_draw_on_it(scenes):
    r = scenes[0]
    detections = r.to_supervision()
    drawn = sv.MaskAnnotator().annotate(r.orig_img.copy(), detections)
    drawn = sv.BoxAnnotator().annotate(drawn, detections)
    drawn = sv.LabelAnnotator().annotate(drawn, detections, labels=list(detections.data["class_name"]))
    assert drawn.shape == r.orig_img.shape and (drawn != r.orig_img).any()
    inside = r.masks.data.any(axis=0)
    assert (drawn[inside] != r.orig_img[inside]).any(axis=1).mean() > 0.5  # the masks are filled
    filtered = detections[detections.confidence > 0.5]  # supervision's own indexing works on it
    assert len(filtered) == int((r.boxes.conf > 0.5).sum())


def assert_same_results(got: Results, want: Results) -> None:
    assert len(got) == len(want) and got.orig_shape == want.orig_shape
    for name in ("xyxy", "conf", "cls"):
        a, b = getattr(got.boxes, name), getattr(want.boxes, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert (got.boxes.id is None) == (want.boxes.id is None)
    if want.boxes.id is not None:
        np.testing.assert_array_equal(got.boxes.id, want.boxes.id)
    np.testing.assert_array_equal(got.masks.data, want.masks.data)


def test_round_trip_keeps_boxes_classes_scores_ids_and_masks(scenes):
    for r in scenes:
        back = Results.from_supervision(r.to_supervision(), r.orig_img, r.names, r.path)
        assert_same_results(back, r)
        assert back.path == r.path and back.names == r.names and back.orig_img is r.orig_img
        # masks inside their boxes come back as the same box-sized crops
        np.testing.assert_array_equal(back.masks.origins, r.masks.origins)
        assert all(np.array_equal(a, b) for a, b in zip(back.masks.crops, r.masks.crops, strict=True))
        assert back.summary() == r.summary()
    r = scenes[1]
    tracked = dataclasses.replace(r, boxes=dataclasses.replace(r.boxes, id=np.arange(len(r), dtype=np.int64) + 3))
    detections = tracked.to_supervision()
    np.testing.assert_array_equal(detections.tracker_id, tracked.boxes.id)
    assert_same_results(Results.from_supervision(detections, r.orig_img, r.names), tracked)
    none = r[r.boxes.conf > 2]
    assert_same_results(Results.from_supervision(none.to_supervision(), r.orig_img, r.names), none)


def test_a_mask_reaching_past_its_box_is_kept_whole():
    frame = np.zeros((30, 40, 3), np.uint8)
    mask = np.zeros((1, 30, 40), bool)
    mask[0, 5:20, 8:30] = True
    detections = sv.Detections(xyxy=np.array([[10.5, 6.2, 25.0, 18.0]], np.float32), mask=mask,
                               confidence=np.array([0.7], np.float32), class_id=np.array([2]))
    r = Results.from_supervision(detections, frame, {2: "star"})
    np.testing.assert_array_equal(r.masks.data[0], mask[0])
    assert r.masks.origins.tolist() == [[8, 5]] and r.masks.crops[0].shape == (15, 22)
    assert r.boxes.cls.dtype == np.int64 and r.path is None
    compact = pytest.importorskip("supervision.detection.compact_mask")
    # supervision's compact masks (which keep only what lies in the box) are read as their dense form
    detections.mask = compact.CompactMask.from_dense(mask, detections.xyxy, image_shape=(30, 40))
    np.testing.assert_array_equal(Results.from_supervision(detections, frame, {2: "star"}).masks.data,
                                  np.asarray(detections.mask))


def test_what_results_cannot_be_made_of_is_a_config_error(scenes):
    r = scenes[0]
    detections = r.to_supervision()
    for field, message in (("mask", "mask"), ("confidence", "confidence"), ("class_id", "class_id")):
        with pytest.raises(ConfigError, match=f"need detections with {message}"):
            Results.from_supervision(dataclasses.replace(detections, **{field: None}), r.orig_img, r.names)
    with pytest.raises(ConfigError, match="masks are"):
        Results.from_supervision(detections, r.orig_img[:100], r.names)
    with pytest.raises(ConfigError, match="orig_img must be"):
        Results.from_supervision(detections, r.orig_img[:, :, 0], r.names)


def test_without_supervision_the_error_says_what_to_install(scenes, monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # import supervision raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "edgeseg\[supervision\]"') as raised:
        scenes[0].to_supervision()
    assert "\n" not in str(raised.value)


def test_hand_made_results_convert_too():
    frame = np.zeros((10, 12, 3), np.uint8)
    boxes = Boxes(np.array([[1, 1, 4, 4]], np.float32), np.array([0.5], np.float32), np.array([7], np.int64), (10, 12))
    r = Results(frame, None, {}, boxes, Masks((np.ones((3, 3), np.uint8),), np.array([[1, 1]]), (10, 12)))
    detections = r.to_supervision()
    assert detections.data["class_name"].tolist() == ["7"]  # a class without a name: its number
    assert_same_results(Results.from_supervision(detections, frame, {}), r)

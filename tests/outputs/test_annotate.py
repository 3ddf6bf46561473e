"""Annotators on hand-made results: the mask fill against a plain NumPy blend, copies, colours, lines and labels."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError
from edgeseg.outputs.annotate import (
    PALETTE,
    Annotator,
    BoxAnnotator,
    LabelAnnotator,
    MaskAnnotator,
    OutlineAnnotator,
    Palette,
    compose,
    plot,
    text_style,
)
from edgeseg.results import Boxes, Masks, Results
from tests.helpers import naive


def made_result(frame, xyxy, crops, origins, cls=None, ids=None, names=None) -> Results:
    """Results with the given boxes and mask crops; classes 0..N-1 unless given, confidence 0.9, ids if given."""
    n = len(xyxy)
    cls = np.arange(n) if cls is None else cls
    boxes = Boxes(np.array(xyxy, np.float32).reshape(n, 4), np.full(n, 0.9, np.float32), np.array(cls, np.int64),
                  frame.shape[:2], None if ids is None else np.array(ids, np.int64))
    crops = tuple(np.asarray(c, np.uint8) for c in crops)
    masks = Masks(crops, np.array(origins, np.int64).reshape(n, 2), frame.shape[:2])
    names = names or {i: f"c{i}" for i in range(max(cls, default=0) + 1)}
    return Results(frame, "frames/scene.jpg", names, boxes, masks)


@pytest.fixture
def scene() -> Results:
    """Three objects on a random 60x80 frame; the last two overlap."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    crops = [rng.random((10, 12)) < 0.6, rng.random((20, 15)) < 0.6, np.ones((8, 9))]
    return made_result(frame, [[3, 4, 15, 14], [40, 30, 55, 50], [50, 45, 59, 53]], crops,
                       [[3, 4], [40, 30], [50, 45]], cls=[0, 1, 21], ids=[7, 3, 27])


def box_region(r: Results) -> np.ndarray:
    """(H, W) bool: the pixels of every object's mask box."""
    inside = np.zeros(r.orig_shape, bool)
    for crop, (x0, y0) in zip(r.masks.crops, r.masks.origins, strict=True):
        inside[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = True
    return inside


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_mask_annotator_equals_a_plain_numpy_blend_inside_the_boxes_only(scene, alpha):
    drawn = MaskAnnotator(alpha).annotate(scene.orig_img, scene)
    colors = PALETTE[scene.boxes.cls % len(PALETTE)]
    want = naive.blend_masks(scene.orig_img, scene.masks.crops, scene.masks.origins, colors, alpha)
    np.testing.assert_array_equal(drawn, want)
    outside = ~box_region(scene)
    np.testing.assert_array_equal(drawn[outside], scene.orig_img[outside])
    assert alpha == 0 or changed(scene.orig_img, drawn).any()


def test_the_frame_is_copied_unless_inplace(scene):
    original = scene.orig_img.copy()
    everything = compose(MaskAnnotator(), OutlineAnnotator(), BoxAnnotator(), LabelAnnotator())
    drawn = everything.annotate(scene.orig_img, scene)
    assert drawn is not scene.orig_img and not np.shares_memory(drawn, scene.orig_img)
    np.testing.assert_array_equal(scene.orig_img, original)
    frame = original.copy()
    assert MaskAnnotator().annotate(frame, scene, inplace=True) is frame
    np.testing.assert_array_equal(frame, MaskAnnotator().annotate(original, scene))
    # a view that is not contiguous is drawn on too
    wide = np.zeros((60, 160, 3), np.uint8)
    wide[:, ::2] = original
    view = wide[:, ::2]
    assert BoxAnnotator().annotate(view, scene, inplace=True) is view
    np.testing.assert_array_equal(wide[:, ::2], BoxAnnotator().annotate(original, scene))
    np.testing.assert_array_equal(wide[:, 1::2], 0)


def test_colour_by_class_or_by_track_id(scene):
    blank = np.zeros_like(scene.orig_img)
    full = [np.ones_like(c) for c in scene.masks.crops]
    r = made_result(blank, scene.boxes.xyxy, full, scene.masks.origins, cls=[1, 1, 21], ids=[7, 3, 27])
    by_class = MaskAnnotator(alpha=1).annotate(blank, r)
    by_track = MaskAnnotator(alpha=1, color_by="track").annotate(blank, r)
    np.testing.assert_array_equal(by_class[5, 5], PALETTE[1])
    np.testing.assert_array_equal(by_class[31, 41], PALETTE[1])
    np.testing.assert_array_equal(by_class[52, 58], PALETTE[21 % 20])
    np.testing.assert_array_equal(by_track[5, 5], PALETTE[7])
    np.testing.assert_array_equal(by_track[31, 41], PALETTE[3])
    np.testing.assert_array_equal(by_track[52, 58], PALETTE[27 % 20])
    boxes = BoxAnnotator(thickness=1, color_by="track").annotate(blank, r)
    np.testing.assert_array_equal(boxes[4, 3], PALETTE[7])
    assert Palette()[27] == tuple(int(c) for c in PALETTE[7])


def test_track_colours_need_track_ids(scene):
    untracked = made_result(scene.orig_img, scene.boxes.xyxy, scene.masks.crops, scene.masks.origins)
    for kind in (MaskAnnotator, OutlineAnnotator, BoxAnnotator, LabelAnnotator):
        annotator = kind(color_by="track")
        with pytest.raises(ConfigError, match="track IDs"):
            annotator.annotate(scene.orig_img, untracked)
    frame = scene.orig_img.copy()
    with pytest.raises(ConfigError, match="track IDs"):  # refused before anything is drawn
        compose(MaskAnnotator(), BoxAnnotator(color_by="track")).annotate(frame, untracked, inplace=True)
    np.testing.assert_array_equal(frame, scene.orig_img)
    nothing = untracked[untracked.boxes.conf > 1]
    np.testing.assert_array_equal(MaskAnnotator(color_by="track").annotate(scene.orig_img, nothing), scene.orig_img)


def test_outline_is_drawn_on_the_contour_pixels():
    frame = np.zeros((40, 50, 3), np.uint8)
    square = np.ones((12, 15), np.uint8)
    ell = np.ones((10, 10), np.uint8)
    ell[:5, 5:] = 0
    r = made_result(frame, [[5, 6, 20, 18], [30, 20, 40, 30]], [square, ell], [[5, 6], [30, 20]])
    drawn = OutlineAnnotator(thickness=1).annotate(frame, r)
    # the contour pixels: mask pixels with a 4-neighbour outside the mask
    edge = np.zeros((40, 50), bool)
    for i in range(len(r)):
        dense = r.masks.dense(i)
        edge |= (dense - cv2.erode(dense, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))).astype(bool)
    np.testing.assert_array_equal(changed(frame, drawn), edge)
    np.testing.assert_array_equal(drawn[6, 5], PALETTE[0])
    np.testing.assert_array_equal(drawn[29, 39], PALETTE[1])


def test_box_annotator_draws_the_rounded_box():
    frame = np.zeros((30, 30, 3), np.uint8)
    r = made_result(frame, [[2.4, 3.6, 20.5, 25.2]], [np.ones((22, 19))], [[2, 3]])
    drawn = BoxAnnotator(thickness=1).annotate(frame, r)
    expected = cv2.rectangle(frame.copy(), (2, 4), (20, 25), tuple(int(c) for c in PALETTE[0]), 1)
    np.testing.assert_array_equal(drawn, expected)
    # a box that reaches the frame's edge keeps its line on the last row and column
    edge = made_result(frame, [[10, 12, 30, 30]], [np.ones((18, 20))], [[10, 12]])
    drawn = BoxAnnotator(thickness=1).annotate(frame, edge)
    expected = cv2.rectangle(frame.copy(), (10, 12), (29, 29), tuple(int(c) for c in PALETTE[0]), 1)
    np.testing.assert_array_equal(drawn, expected)


def label_extent(frame: np.ndarray, xyxy, annotator=None) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of what a LabelAnnotator draws for one object with the given box on a black frame."""
    r = made_result(frame, [xyxy], [np.zeros((0, 0))], [[0, 0]], ids=[12], names={0: "person"})
    ys, xs = np.nonzero(changed(frame, (annotator or LabelAnnotator()).annotate(frame, r)))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_labels_grow_with_the_frame_and_stay_readable():
    heights, widths = [], []
    for w, h in [(320, 240), (640, 480), (1920, 1080), (3840, 2160)]:
        frame = np.zeros((h, w, 3), np.uint8)
        x0, y0, x1, y1 = label_extent(frame, [w / 4, h / 2, w / 2, h * 3 / 4])
        heights.append(y1 - y0)
        widths.append(x1 - x0)
        assert y1 == h // 2 and x0 == w // 4  # above the box, at its left edge
    assert heights == sorted(heights) and heights[-1] > 5 * heights[0]
    assert heights[0] >= 14, "a 320x240 label must stay readable"
    # in proportion to the frame: twice the size at 4K as at 1080p
    assert abs(heights[3] / heights[2] - 2) < 0.1 and abs(widths[3] / widths[2] - 2) < 0.1
    assert text_style((2160, 3840)) == (3.0, 6) and text_style((240, 320)) == (0.4, 1)


@pytest.mark.parametrize("w, h", [(320, 240), (3840, 2160)])
def test_labels_stay_inside_the_frame(w, h):
    frame = np.zeros((h, w, 3), np.uint8)
    middle = label_extent(frame, [w / 3, h / 3, w / 2, h / 2])
    size = (middle[2] - middle[0], middle[3] - middle[1])
    for xyxy in ([0, 0, w / 4, h / 4], [w - 2, 0, w, 5], [w - 2, h - 2, w, h], [0, h - 3, 4, h]):
        x0, y0, x1, y1 = label_extent(frame, xyxy)
        assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
        assert (x1 - x0, y1 - y0) == size, f"label cut at box {xyxy}"


def test_label_text_and_options(scene):
    assert [LabelAnnotator().text(scene, i) for i in range(3)] == ["c0 0.90 #7", "c1 0.90 #3", "c21 0.90 #27"]
    assert LabelAnnotator(show_conf=False, show_id=False).text(scene, 0) == "c0"
    untracked = made_result(scene.orig_img, scene.boxes.xyxy, scene.masks.crops, scene.masks.origins)
    assert LabelAnnotator().text(untracked, 1) == "c1 0.90"
    small, big = (label_extent(np.zeros((200, 200, 3), np.uint8), [50, 100, 80, 150], LabelAnnotator(text_scale=s))
                  for s in (0.5, 1.0))
    assert big[3] - big[1] > 1.5 * (small[3] - small[1])


@pytest.mark.parametrize("confidences", [(0.42, 0.62), (0.62, 0.42)])
def test_the_most_confident_label_is_drawn_on_top(confidences):
    """Two objects whose labels fall on the same spot: the 0.62 label covers the 0.42 one, whatever their order."""
    frame = np.zeros((80, 100, 3), np.uint8)
    r = made_result(frame, [[20, 30, 60, 70], [21, 30, 70, 75]], [np.ones((40, 40)), np.ones((45, 49))],
                    [[20, 30], [21, 30]])
    r = Results(r.orig_img, r.path, r.names, dataclasses.replace(r.boxes, conf=np.array(confidences, np.float32)),
                r.masks)
    drawn = LabelAnnotator().annotate(frame, r)
    top = int(np.argmax(confidences))
    # both labels end on row 29, above their boxes, and are several times wider than the 1-pixel offset: row 29 is
    # the bottom padding of both, in the colour of the one drawn last
    np.testing.assert_array_equal(drawn[29, 22:40], np.tile(PALETTE[top], (18, 1)))
    assert [LabelAnnotator().text(r, i) for i in range(2)] == [f"c{i} {c:.2f}" for i, c in enumerate(confidences)]


def test_compose_applies_in_order_on_one_copy_and_plot_uses_it(scene):
    annotators = [MaskAnnotator(0.4), BoxAnnotator(), LabelAnnotator()]
    step = scene.orig_img
    for annotator in annotators:
        step = annotator.annotate(step, scene)
    np.testing.assert_array_equal(compose(*annotators).annotate(scene.orig_img, scene), step)
    np.testing.assert_array_equal(plot(scene, alpha=0.4), step)
    without_labels = compose(MaskAnnotator(), BoxAnnotator()).annotate(scene.orig_img, scene)
    np.testing.assert_array_equal(plot(scene, labels=False, conf=False), without_labels)
    # as in Ultralytics, labels=False leaves the class name (and track ID) out but still writes the confidence
    conf_only = compose(MaskAnnotator(), BoxAnnotator(), LabelAnnotator(show_id=False, show_name=False))
    np.testing.assert_array_equal(plot(scene, labels=False), conf_only.annotate(scene.orig_img, scene))


def test_bad_settings_and_frames_are_refused(scene):
    for make in (lambda: MaskAnnotator(alpha=1.5), lambda: MaskAnnotator(alpha="0.5"),
                 lambda: MaskAnnotator(color_by="id"), lambda: BoxAnnotator(thickness=0),
                 lambda: OutlineAnnotator(thickness=1.5), lambda: LabelAnnotator(text_scale=-1),
                 lambda: Palette(np.zeros((0, 3), np.uint8)), lambda: Palette([(0, 0, 256)]),
                 lambda: BoxAnnotator(palette=PALETTE), lambda: compose(MaskAnnotator(), "boxes")):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ValueError, match="frame is 80x59"):
        MaskAnnotator().annotate(scene.orig_img[:59], scene)
    with pytest.raises(ValueError, match="frame must be"):
        MaskAnnotator().annotate(scene.orig_img[:, :, 0], scene)
    with pytest.raises(NotImplementedError):
        Annotator().annotate(scene.orig_img, scene)

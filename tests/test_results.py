"""Results: filtering by indexing, as NumPy indexes the objects' axis."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.results import Boxes, Masks, Results


def three_objects() -> Results:
    """Three 2x2 objects in a 10x10 frame, at x = 0, 3, 6, with confidences 0.9, 0.5, 0.7."""
    xyxy = np.array([[0, 0, 2, 2], [3, 0, 5, 2], [6, 0, 8, 2]], np.float32)
    boxes = Boxes(xyxy, np.array([0.9, 0.5, 0.7], np.float32), np.array([0, 1, 0], np.int64), (10, 10))
    masks = Masks(tuple(np.ones((2, 2), np.uint8) for _ in range(3)), xyxy[:, :2].astype(np.int64), (10, 10))
    return Results(np.zeros((10, 10, 3), np.uint8), None, {0: "a", 1: "b"}, boxes, masks)


@pytest.mark.parametrize("index, kept", [
    (1, [3]), (-1, [6]), (np.int64(2), [6]), (slice(None, None, -1), [6, 3, 0]), ([0, 2], [0, 6]),
    (np.array([True, False, True]), [0, 6]), ([], []), (np.zeros(0, np.int64), []), (slice(0, 0), []),
])  # fmt: skip
def test_indexing_selects_objects(index, kept):
    r = three_objects()[index]
    assert r.boxes.xyxy[:, 0].tolist() == kept and r.masks.origins[:, 0].tolist() == kept


@pytest.mark.parametrize("index", [True, False, np.True_, None, np.array([[0, 1]])])
def test_an_index_that_selects_no_objects_is_refused(index):
    """A bool scalar is an int to Python (r[True] was object 1); None and 2-D arrays add an axis."""
    with pytest.raises(IndexError, match="does not select objects"):
        three_objects()[index]


def input_frame_masks() -> Masks:
    """Two objects in a 64x64 network input that letterboxes a 100x200 source (padding of 16 rows above)."""
    crops = (np.ones((3, 4), np.uint8), np.pad(np.ones((4, 4), np.uint8), 1))
    return Masks(crops, np.array([[10, 20], [30, 40]], np.int64), (100, 200), (64, 64))


def test_masks_in_the_input_frame_keep_their_frame():
    from edgeseg.inputs.letterbox import points_to_source
    from edgeseg.outputs.contours import object_polygon

    masks = input_frame_masks()
    assert masks.frame_shape == (64, 64) and masks.shape == (2, 64, 64) and masks.data.shape == (2, 64, 64)
    assert masks.dense(1)[41:45, 31:35].all() and masks.areas.tolist() == [12, 16]
    one = masks[[1]]
    assert one.input_shape == (64, 64) and one.orig_shape == (100, 200)
    # outlines traced in the input frame and scaled to the source: x / 0.32, (y - 16) / 0.32
    traced = object_polygon(masks.crops[0], masks.origins[0], "all")
    np.testing.assert_array_equal(masks.xy[0], points_to_source(traced, (64, 64), (100, 200)))
    assert masks.xy[0][0].tolist() == [31.25, 12.5]
    np.testing.assert_allclose(masks.xyn[0], masks.xy[0] / [200, 100])
    with pytest.raises(ValueError, match="does not fit a 64x64 frame"):
        Masks((np.ones((3, 4), np.uint8),), np.array([[62, 0]], np.int64), (100, 200), (64, 64))


def test_to_source_brings_input_frame_masks_to_the_image_once():
    masks = input_frame_masks()
    source = masks.to_source()
    assert source.input_shape is None and source.shape == (2, 100, 200) and masks.to_source() is source
    # object 0 covers input x [10, 14), y [20, 23): source pixels whose centre samples it above one half,
    # x 0.32 (x + 0.5) - 0.5 in [9.5, 13.5) and y 0.32 (y + 0.5) - 0.5 + 16 in (19.5, 22.5)
    ys, xs = np.nonzero(source.dense(0))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (31, 43, 13, 21)
    plain = Masks((np.ones((2, 2), np.uint8),), np.zeros((1, 2), np.int64), (10, 10))
    assert plain.to_source() is plain


def test_outputs_of_input_frame_results_are_those_of_their_source_masks():
    """plot, isolate, to_coco and to_supervision read masks at the source: the same as on to_source()'s."""
    masks = input_frame_masks()
    xyxy = np.array([[30, 10, 45, 23], [90, 60, 115, 85]], np.float32)
    boxes = Boxes(xyxy, np.array([0.9, 0.6], np.float32), np.array([0, 1], np.int64), (100, 200))
    image = np.random.default_rng(0).integers(0, 255, (100, 200, 3), np.uint8)
    small = Results(image, "a.jpg", {0: "a", 1: "b"}, boxes, masks)
    big = Results(image, "a.jpg", {0: "a", 1: "b"}, boxes, masks.to_source())
    np.testing.assert_array_equal(small.plot(), big.plot())
    for a, b in zip(small.isolate(background="transparent"), big.isolate(background="transparent"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert small.to_coco() == big.to_coco()

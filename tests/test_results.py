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

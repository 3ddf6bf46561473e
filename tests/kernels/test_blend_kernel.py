"""The mask-blend kernel against a full-frame NumPy blend."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.kernels.blend import blend_masks, blend_weight
from tests.helpers import naive


def random_objects(rng, height, width, n):
    crops, origins = [], []
    for _ in range(n):
        h, w = int(rng.integers(0, 15)), int(rng.integers(0, 15))
        h, w = min(h, height), min(w, width)
        origins.append((int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))))
        crops.append((rng.random((h, w)) < rng.random()).astype(np.uint8) * rng.integers(1, 256, dtype=np.uint8))
    return crops, np.array(origins, np.int64).reshape(n, 2), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_blend_matches_naive_on_random_crops_colours_and_alphas():
    rng = np.random.default_rng(0)
    for trial in range(150):
        height, width = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        crops, origins, colors = random_objects(rng, height, width, int(rng.integers(0, 8)))
        alpha = float(rng.choice([0.0, 0.5, 1.0, rng.random()]))
        want = naive.blend_masks(frame, crops, origins, colors, alpha)
        got = frame.copy()
        assert blend_masks(got, crops, origins, colors, alpha) is got
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}, alpha {alpha}")


def test_rounding_rule_and_alpha_extremes():
    frame = np.array([[[0, 1, 255]]], np.uint8)
    one = [np.ones((1, 1), np.uint8)]
    half = blend_masks(frame.copy(), one, [(0, 0)], [(255, 0, 0)], 0.5)
    # (f * 128 + c * 128 + 128) >> 8: the halves 127.5 and 0.5 round up
    np.testing.assert_array_equal(half[0, 0], [128, 1, 128])
    np.testing.assert_array_equal(blend_masks(frame.copy(), one, [(0, 0)], [(9, 8, 7)], 1.0)[0, 0], [9, 8, 7])
    np.testing.assert_array_equal(blend_masks(frame.copy(), one, [(0, 0)], [(9, 8, 7)], 0.0), frame)
    assert [blend_weight(a) for a in (0, 0.25, 0.5, 1, 1 / 512, 0.999)] == [0, 64, 128, 256, 1, 256]


def test_later_objects_are_blended_over_earlier_ones():
    frame = np.full((4, 4, 3), 100, np.uint8)
    crops = [np.ones((3, 3), np.uint8), np.ones((2, 2), bool)]
    colors = np.array([(200, 0, 0), (0, 200, 0)], np.uint8)
    got = blend_masks(frame.copy(), crops, [(0, 0), (1, 1)], colors, 0.5)
    np.testing.assert_array_equal(got[0, 0], [150, 50, 50])
    np.testing.assert_array_equal(got[1, 1], [75, 125, 25])  # the first blend, then the second over it
    np.testing.assert_array_equal(got[2, 2], [75, 125, 25])
    np.testing.assert_array_equal(got[3, 3], [100, 100, 100])
    swapped = blend_masks(frame.copy(), crops[::-1], [(1, 1), (0, 0)], colors[::-1], 0.5)
    np.testing.assert_array_equal(swapped[1, 1], [125, 75, 25])
    np.testing.assert_array_equal(got, naive.blend_masks(frame, crops, [(0, 0), (1, 1)], colors, 0.5))


def test_empty_crops_and_no_objects_leave_the_frame_alone():
    frame = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    crops = [np.zeros((0, 0), np.uint8), np.zeros((3, 0), np.uint8), np.zeros((2, 2), np.uint8)]
    got = blend_masks(frame.copy(), crops, [(6, 5), (2, 2), (4, 3)], np.zeros((3, 3), np.uint8), 0.7)
    np.testing.assert_array_equal(got, frame)
    np.testing.assert_array_equal(blend_masks(frame.copy(), [], np.zeros((0, 2), np.int64), [], 0.5), frame)


def test_blend_rejects_bad_input():
    frame = np.zeros((10, 10, 3), np.uint8)
    one = [np.ones((2, 2), np.uint8)]
    with pytest.raises(ValueError, match="frame must be"):
        blend_masks(frame[:, :, 0], one, [(0, 0)], [(1, 2, 3)], 0.5)
    with pytest.raises(ValueError, match="frame must be"):
        blend_masks(frame.astype(np.float32), one, [(0, 0)], [(1, 2, 3)], 0.5)
    with pytest.raises(ValueError, match="contiguous"):
        blend_masks(frame[:, ::2], one, [(0, 0)], [(1, 2, 3)], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        blend_masks(frame, one, [(0, 0)], [(1, 2, 3)], 1.5)
    with pytest.raises(ValueError, match="alpha"):
        blend_masks(frame, one, [(0, 0)], [(1, 2, 3)], float("nan"))
    with pytest.raises(ValueError, match="does not fit"):
        blend_masks(frame, one, [(9, 0)], [(1, 2, 3)], 0.5)
    with pytest.raises(ValueError, match="does not fit"):
        blend_masks(frame, one, [(0, -1)], [(1, 2, 3)], 0.5)
    with pytest.raises(ValueError, match="origins"):
        blend_masks(frame, one * 2, [(0, 0)], [(1, 2, 3)] * 2, 0.5)
    with pytest.raises(ValueError, match="colors"):
        blend_masks(frame, one, [(0, 0)], [(1, 2, 300)], 0.5)
    with pytest.raises(ValueError, match="crop 0"):
        blend_masks(frame, [np.ones((2, 2), np.float32)], [(0, 0)], [(1, 2, 3)], 0.5)

"""The cut-out kernel against a full-frame NumPy version of itself."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.kernels.isolate import cut_out
from tests.helpers import naive


@pytest.mark.parametrize("mode", ["black", "transparent", "mask"])
def test_cut_out_matches_naive_on_random_masks_and_regions(mode):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for _ in range(400):
        h, w = int(rng.integers(0, 20)), int(rng.integers(0, 20))
        x0, y0 = int(rng.integers(0, 53 - w + 1)), int(rng.integers(0, 37 - h + 1))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8) * rng.integers(1, 256, dtype=np.uint8)
        # regions that hold the mask, cut through it, miss it, or are empty or the whole frame
        rx0, rx1 = np.sort(rng.integers(0, 54, 2))
        ry0, ry1 = np.sort(rng.integers(0, 38, 2))
        for region in ((rx0, ry0, rx1, ry1), (0, 0, 53, 37), (x0, y0, x0 + w, y0 + h)):
            got = cut_out(frame, mask, (x0, y0), region, mode)
            want = naive.cut_out(frame, mask, (x0, y0), region, mode)
            assert got.dtype == np.uint8 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_cut_out_rejects_bad_input():
    frame = np.zeros((10, 10, 3), np.uint8)
    mask = np.ones((2, 2), np.uint8)
    with pytest.raises(ValueError, match="region"):
        cut_out(frame, mask, (0, 0), (0, 0, 11, 5), "black")
    with pytest.raises(ValueError, match="mode"):
        cut_out(frame, mask, (0, 0), (0, 0, 5, 5), "white")
    with pytest.raises(ValueError, match="frame must be"):
        cut_out(frame[:, :, 0], mask, (0, 0), (0, 0, 5, 5), "black")
    with pytest.raises(ValueError, match="mask must be"):
        cut_out(frame, mask.astype(bool), (0, 0), (0, 0, 5, 5), "black")

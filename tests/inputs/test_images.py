"""Image arrays as users hold them -> the BGR uint8 images the network reads (edgeseg.inputs.images.to_bgr), and image
files that cannot be read (read_image)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg import SourceError
from edgeseg.inputs.images import read_image, to_bgr


def test_float_images_are_read_on_the_0_to_1_scale():
    image = np.random.default_rng(0).random((6, 5, 3))
    expected = (image * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(to_bgr(image), expected)
    overshoot = image * 1.4 - 0.2  # what cubic or Lanczos resizing of a [0, 1] image gives: clipped
    np.testing.assert_array_equal(to_bgr(overshoot), (np.clip(overshoot, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_float_images_on_the_0_to_255_scale_are_refused():
    """img.astype(np.float32) would otherwise be clipped to a white frame and find nothing, without a word."""
    image = np.random.default_rng(0).integers(0, 256, (6, 5, 3)).astype(np.float32)
    with pytest.raises(SourceError, match=r"must be in \[0, 1\].*divide by 255"):
        to_bgr(image, "frame")


def test_a_video_where_an_image_is_expected_says_so(tmp_path):
    clip, junk = tmp_path / "clip.mp4", tmp_path / "junk.jpg"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # not decodable as an image
    junk.write_bytes(clip.read_bytes())
    with pytest.raises(SourceError, match=r"clip\.mp4 is a video, not an image: give it as the only source"):
        read_image(str(clip))
    with pytest.raises(SourceError, match=r"cannot decode .*junk\.jpg as an image"):
        read_image(str(junk))

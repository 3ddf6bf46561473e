"""Image files and arrays that are broken in ways OpenCV and NumPy do not report well: a PNG whose header claims an
image too large to decode, a JPEG without its end marker, float images on the wrong scale. Each is one SourceError line
that says what to do, or a warning when the image is still read."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import Segmenter, SourceError
from edgeseg.assets import demo_model_path
from edgeseg.inputs.images import read_image, to_bgr
from edgeseg.inputs.source import open_source

TRUNCATED = "truncated JPEG (no end marker); processed as decoded"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path) -> Path:
    """A valid PNG of a few dozen bytes whose header claims 100000 x 100000 RGB pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(16)))
                     + png_chunk(b"IEND", b""))
    return path


def jpeg_bytes() -> bytes:
    yy, xx = np.mgrid[0:48, 0:64]
    ok, encoded = cv2.imencode(".jpg", np.stack([xx, yy, xx + yy], axis=-1).astype(np.uint8))
    assert ok and encoded.tobytes().endswith(b"\xff\xd9")
    return encoded.tobytes()


def decodes(data: bytes) -> bool:
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    except cv2.error:
        return False


def test_a_png_claiming_too_many_pixels_is_a_source_error(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    with pytest.raises(cv2.error, match="CV_IO_MAX_IMAGE_PIXELS"):  # what OpenCV does with it
        cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    with pytest.raises(SourceError) as raised:
        read_image(str(path))
    message = str(raised.value)
    assert message == (f"cannot decode {path}: its header claims more pixels than OpenCV reads (2^30); the file is "
                       "corrupt, or set OPENCV_IO_MAX_IMAGE_PIXELS before starting Python to read it")
    assert "\n" not in message


def test_a_png_claiming_too_many_pixels_stops_predict_and_is_skipped_by_open_source(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    with Segmenter(demo_model_path()) as seg, pytest.raises(SourceError, match=r"^cannot decode .*huge\.png: its "):
        seg.predict(path)
    with open_source(path, strict=True) as frames, pytest.raises(SourceError, match="OPENCV_IO_MAX_IMAGE_PIXELS"):
        next(frames)
    with open_source([path, path]) as frames:  # not strict: skipped and counted, the next item still read
        assert list(frames) == [] and frames.frames_corrupt == 2


def test_a_jpeg_without_its_end_marker_is_read_with_a_warning(tmp_path, caplog):
    data = jpeg_bytes()
    good, padded = tmp_path / "good.jpg", tmp_path / "padded.jpeg"
    good.write_bytes(data)
    padded.write_bytes(data + bytes(300))  # zero padding after the end marker: a whole file
    with caplog.at_level(logging.WARNING, logger="edgeseg.inputs.images"):
        expected = read_image(str(good))
        np.testing.assert_array_equal(read_image(str(padded)), expected)
    assert caplog.messages == []
    # the end marker lost; which of these OpenCV still decodes depends on its version (OpenCV 4 decodes a plain cut
    # and greys what is missing, OpenCV 5 only some) and on the last bytes of the scan
    endings = [data[:-2], data[:-2] + bytes(2), data[:-2] + b"\x12\x34", data[:-2] + b"\xff\xd8"]
    lost = next((e for e in endings if decodes(e)), None)
    if lost is None:
        pytest.skip("this OpenCV decodes no JPEG without its end marker")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(lost)
    with caplog.at_level(logging.WARNING, logger="edgeseg.inputs.images"):
        image = read_image(str(cut))
    assert image.shape == expected.shape
    assert caplog.messages == [f"{cut}: {TRUNCATED}"]
    caplog.clear()
    png = tmp_path / "png.jpg"  # a PNG named .jpg has no JPEG end marker to miss
    ok, encoded = cv2.imencode(".png", expected)
    png.write_bytes(encoded.tobytes())
    with caplog.at_level(logging.WARNING, logger="edgeseg.inputs.images"):
        read_image(str(png))
    assert caplog.messages == []


def test_a_jpeg_cut_short_that_opencv_cannot_decode_is_a_source_error(tmp_path):
    cut = tmp_path / "half.jpg"
    cut.write_bytes(jpeg_bytes()[:300])
    if decodes(cut.read_bytes()):
        pytest.skip("this OpenCV decodes a JPEG cut in half")
    with pytest.raises(SourceError, match=r"^cannot decode .*half\.jpg as an image \(empty, truncated"):
        read_image(str(cut))


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-0.6, 0.9), (-1.0, 0.0), (-0.2, 0.0)])
def test_float_images_below_the_0_to_1_scale_are_refused(low, high):
    image = np.random.default_rng(0).uniform(low, high, (6, 5, 3)).astype(np.float32)
    image[0, 0, 0], image[0, 0, 1] = low, high
    with pytest.raises(SourceError) as raised:
        to_bgr(image, "frame")
    assert str(raised.value) == (f"frame: float images must be in [0, 1], this one reaches {low:g} (a [-1, 1] "
                                 "normalised image: give x * 0.5 + 0.5; a [-1, 0] one: x + 1)")
    converted = to_bgr(image * 0.5 + 0.5 if low < -0.5 else image + 1)  # what the message says works
    assert converted.dtype == np.uint8


def test_the_overshoot_of_resizing_a_0_to_1_image_stays_allowed():
    rng = np.random.default_rng(1)
    checkerboard = (np.indices((16, 16)).sum(axis=0) % 2).astype(np.float32)
    resized = cv2.resize(checkerboard, (40, 40), interpolation=cv2.INTER_LANCZOS4)
    assert -0.5 < resized.min() < 0 < 1 < resized.max() < 2  # both ways out of [0, 1]
    np.testing.assert_array_equal(to_bgr(resized), cv2.cvtColor(
        (np.clip(resized, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    assert to_bgr(rng.uniform(-0.5, 1.0, (4, 4)).astype(np.float32)).shape == (4, 4, 3)  # -0.5 itself: clipped
    assert (to_bgr(np.zeros((4, 4), np.float32)) == 0).all()  # an all-black frame is no negative image
    with pytest.raises(SourceError, match=r"reaches 300 \(divide by 255"):  # the message for the 0-255 scale stays
        to_bgr(np.full((4, 4), 300, np.float32))

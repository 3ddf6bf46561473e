"""Segmenter.stream_pipelined: the same results as stream(), in order, with the stages in threads."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.inputs.frames import Frame


@pytest.fixture(scope="module")
def frames(val_images) -> list[Frame]:
    images = [(str(p), cv2.imread(str(p))) for p in val_images[:12]]
    images[3] = ("resized", cv2.resize(images[3][1], (480, 270)))  # another size in the middle of the sequence
    return [Frame(image, k, name, path=name) for k, (name, image) in enumerate(images)]


@pytest.mark.parametrize("depth", [1, 3])
def test_pipelined_results_equal_sequential_ones_in_order(shapes_onnx, frames, depth):
    seg = Segmenter(shapes_onnx)
    sequential = [seg.predict(frame.image)[0] for frame in frames]
    pipelined = list(seg.stream_pipelined(iter(frames), depth=depth))
    assert [r.path for r in pipelined] == [frame.path for frame in frames]
    for a, b in zip(sequential, pipelined, strict=True):
        np.testing.assert_array_equal(a.boxes.xyxy, b.boxes.xyxy)
        np.testing.assert_array_equal(a.masks.data, b.masks.data)
        assert set(b.speed) == {"preprocess", "inference", "postprocess"}


def test_pipelined_batches(shapes_dynamic_onnx, frames):
    seg = Segmenter(shapes_dynamic_onnx, imgsz=320, batch=4)
    same = [Frame(cv2.resize(f.image, (320, 320)), f.index, f.source, path=f.path) for f in frames]
    one_by_one = [Segmenter(shapes_dynamic_onnx, imgsz=320).predict(f.image)[0] for f in same]
    batched = list(seg.stream_pipelined(iter(same)))
    assert len(batched) == len(same)
    for a, b in zip(one_by_one, batched, strict=True):
        np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1e-3)


def test_closing_early_stops_the_threads(shapes_onnx, frames):
    seg = Segmenter(shapes_onnx)
    before = threading.active_count()
    results = seg.stream_pipelined(iter(frames * 5))
    next(results)
    results.close()
    assert threading.active_count() == before


def test_an_error_in_the_source_reaches_the_caller(shapes_onnx, frames):
    def broken():
        yield frames[0]
        raise OSError("camera unplugged")

    seg = Segmenter(shapes_onnx)
    results = seg.stream_pipelined(broken())
    assert next(results).path == frames[0].path
    with pytest.raises(OSError, match="camera unplugged"):
        next(results)
    with pytest.raises(ConfigError, match="depth"):
        next(seg.stream_pipelined(iter(frames), depth=0))

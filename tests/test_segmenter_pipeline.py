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


def test_stream_frames_hands_each_result_its_own_frame(shapes_onnx, frames):
    seg = Segmenter(shapes_onnx)
    pairs = list(seg.stream_frames(iter(frames), depth=2))
    assert [frame for frame, _ in pairs] == frames  # the same Frame objects, in order
    for frame, result in pairs:
        assert result.orig_img is frame.image and result.path == frame.path


def test_the_stages_one_at_a_time_give_what_predict_gives(shapes_onnx, frames):
    seg = Segmenter(shapes_onnx)
    images = [frame.image for frame in frames[:3]]
    tensor, letterboxes = seg.preprocess(images[:1])
    staged = seg.postprocess(seg.infer(tensor), letterboxes, images[:1], paths=["a.jpg"])
    (whole,) = seg.predict(images[0])
    assert staged[0].path == "a.jpg"
    np.testing.assert_array_equal(staged[0].boxes.xyxy, whole.boxes.xyxy)
    np.testing.assert_array_equal(staged[0].masks.data, whole.masks.data)
    with pytest.raises(ValueError):  # one path per image
        seg.postprocess(seg.infer(tensor), letterboxes, images[:1], paths=["a.jpg", "b.jpg"])


def test_a_callers_frame_source_stays_open(shapes_onnx, frames):
    from edgeseg.inputs.frames import PushSource

    seg = Segmenter(shapes_onnx)
    source = PushSource("cam")
    for frame in frames[:2]:
        source.push(frame.image)
    source.close()  # no more frames: iteration ends once the two are taken
    assert len(seg.predict(source)) == 2
    assert not source.closed  # Segmenter.stream closes only what it opened itself

    own = seg.stream(frames[0].image)
    next(own)  # the ImageSource it opened for the array is closed with the generator
    own.close()


def test_an_unreadable_image_stops_stream(shapes_onnx, frames, tmp_path):
    from edgeseg import SourceError

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), frames[0].image)
    seg = Segmenter(shapes_onnx)
    results = seg.stream([str(good), str(broken)])
    assert next(results).path == str(good)
    with pytest.raises(SourceError, match="broken.jpg"):
        next(results)


def test_strict_false_skips_an_unreadable_image(shapes_onnx, frames, tmp_path):
    broken, good = tmp_path / "a-broken.jpg", tmp_path / "b-good.jpg"
    broken.write_bytes(b"not an image")
    cv2.imwrite(str(good), frames[0].image)
    seg = Segmenter(shapes_onnx)
    assert [r.path for r in seg.predict(tmp_path, strict=False)] == [str(good)]
    assert [r.path for r in seg.stream_pipelined(tmp_path, strict=False)] == [str(good)]


def test_several_runs_in_flight_keep_the_order_and_run_together():
    """overlapped(in_flight=N): N infer calls at once (a device that works on several requests together), results
    still in order, an error raised in order, and closing early leaves no thread behind."""
    import threading
    import time

    from edgeseg.pipeline import overlapped

    running, most = [0], [0]
    lock = threading.Lock()

    def infer(item: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 * (item % 3))  # later items may end first
        with lock:
            running[0] -= 1
        if item == 13:
            raise ValueError("item 13")
        return item * 10

    out = list(overlapped(range(12), lambda i: i, infer, lambda r: [r], depth=2, in_flight=3))
    assert out == [i * 10 for i in range(12)] and most[0] == 3
    got = []
    with pytest.raises(ValueError, match="item 13"):
        for r in overlapped(range(20), lambda i: i, infer, lambda r: [r], depth=2, in_flight=3):
            got.append(r)
    assert got == [i * 10 for i in range(13)]
    before = threading.active_count()
    stream = overlapped(range(1000), lambda i: i, infer, lambda r: [r], depth=2, in_flight=3)
    assert [next(stream) for _ in range(3)] == [0, 10, 20]
    stream.close()
    time.sleep(0.3)
    assert threading.active_count() <= before
    with pytest.raises(ValueError, match="in_flight"):
        list(overlapped(range(2), lambda i: i, infer, lambda r: [r], in_flight=0))


def test_openvino_throughput_runs_several_requests_and_gives_the_same_results(shapes_onnx, frames):
    pytest.importorskip("openvino")
    from edgeseg import ProviderOptions

    options = ProviderOptions(openvino_hint="throughput")
    with Segmenter(shapes_onnx, backend="openvino", provider_options=options) as seg, \
            Segmenter(shapes_onnx, backend="openvino") as single:
        assert seg.backend.requests_in_flight >= 1 and single.backend.requests_in_flight == 1
        many = [r for _, r in seg.stream_frames(frames)]
        one = [r for _, r in single.stream_frames(frames)]
    assert len(many) == len(one) == len(frames)
    for a, b in zip(many, one, strict=True):
        np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1e-3)
        np.testing.assert_array_equal(a.boxes.cls, b.boxes.cls)

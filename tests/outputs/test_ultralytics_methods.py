"""The Results methods Ultralytics users call (plot, save, show, summary, to_json, save_txt, save_crop, verbose, cpu,
numpy) and the Boxes and Masks arrays they read, against Ultralytics' own on the same ONNX model and images."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, OutputError, Segmenter
from edgeseg.outputs import annotate
from edgeseg.outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
from edgeseg.outputs.isolate import box_crops
from edgeseg.results import Boxes, Masks, Results

ultralytics = pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pairs(shapes_onnx, val_images):
    """(Ultralytics' result, edgeseg's result) on the same images: validation images and a resized one."""
    yolo, seg = ultralytics.YOLO(str(shapes_onnx), task="segment"), Segmenter(shapes_onnx)
    images = [cv2.imread(str(p)) for p in val_images[:8]] + [cv2.resize(cv2.imread(str(val_images[8])), (700, 500))]
    found = []
    for k, image in enumerate(images):
        ref = yolo.predict(image, retina_masks=True, verbose=False)[0]
        ours = seg(image)[0]
        assert len(ref) == len(ours) and np.array_equal(ref.boxes.xyxy.numpy(), ours.boxes.xyxy), f"image {k}"
        found.append((ref, ours))
    assert sum(len(ours) for _, ours in found) > 40
    return found


def assert_same_array(ours: np.ndarray, ref) -> None:
    ref = ref.numpy() if hasattr(ref, "numpy") else np.asarray(ref)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, f"{ours.shape} {ours.dtype} != {ref.shape} {ref.dtype}"
    np.testing.assert_array_equal(ours, ref)


def test_boxes_and_masks_arrays_equal_ultralytics(pairs):
    for ref, ours in pairs:
        for name in ("data", "xyxy", "xywh", "xyxyn", "xywhn", "conf"):
            assert_same_array(getattr(ours.boxes, name), getattr(ref.boxes, name))
        assert ours.boxes.shape == tuple(ref.boxes.shape) == (len(ours), 6)
        assert ours.boxes.is_track is ref.boxes.is_track is False and ours.boxes.id is None
        # cls is int64 here (a class is a whole number), float32 in Ultralytics' packed tensor
        np.testing.assert_array_equal(ours.boxes.cls, ref.boxes.cls.numpy())
        assert ours.masks.shape == tuple(ref.masks.shape) == (len(ours), *ours.orig_shape)
        assert_same_array(ours.masks.data, ref.masks.data)
        for got, want in zip(ours.masks.xyn, ref.masks.xyn, strict=True):
            assert_same_array(got, want)


def test_tracked_boxes_pack_the_id_before_conf_as_ultralytics(pairs):
    ref, ours = pairs[0]
    ids = np.arange(5, 5 + len(ours), dtype=np.int64)
    ours = dataclasses.replace(ours.boxes, id=ids)
    data = ref.boxes.data
    ref = ultralytics.engine.results.Boxes(torch.cat([data[:, :4], torch.as_tensor(ids, dtype=data.dtype)[:, None],
                                                      data[:, 4:]], dim=1), ref.orig_shape)
    assert ours.is_track and ref.is_track
    assert ours.shape == tuple(ref.shape) == (len(ours), 7)
    assert_same_array(ours.data, ref.data)
    np.testing.assert_array_equal(ours.id, ref.id.numpy())
    assert ours[[1, 0]].data[:, 4].tolist() == [6, 5]


def test_cpu_and_numpy_give_the_same_objects(pairs):
    _, r = pairs[0]
    assert r.cpu() is r and r.numpy() is r and r.to_host() is r
    assert r.boxes.cpu() is r.boxes and r.boxes.numpy() is r.boxes
    assert r.masks.cpu() is r.masks and r.masks.numpy() is r.masks


def with_ids(ref, ours, first: int = 5):
    """Both results tracked, with IDs first, first + 1, ...: Ultralytics' boxes in its (N, 7) layout."""
    ids = np.arange(first, first + len(ours), dtype=np.int64)
    data = ref.boxes.data
    packed = torch.cat([data[:, :4], torch.as_tensor(ids, dtype=data.dtype)[:, None], data[:, 4:]], dim=1)
    ref = ref[:]
    ref.boxes = ultralytics.engine.results.Boxes(packed, ref.orig_shape)
    return ref, dataclasses.replace(ours, boxes=dataclasses.replace(ours.boxes, id=ids))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("decimals", [5, 2])
def test_summary_and_json_equal_ultralytics(pairs, normalize, decimals):
    for ref, ours in pairs:
        want = ref.summary(normalize=normalize, decimals=decimals)
        assert ours.summary(normalize=normalize, decimals=decimals) == want
        assert set(want[0]) == {"name", "class", "confidence", "box", "segments"}
        got_json = ours.to_json(normalize=normalize, decimals=decimals)
        # the same JSON values; Polars, which Ultralytics' to_json goes through, spells 7e-05 as 0.00007
        assert json.loads(got_json) == json.loads(ref.to_json(normalize=normalize, decimals=decimals)) == want
        if not normalize:
            assert got_json == ref.to_json(normalize=normalize, decimals=decimals)
    ref, ours = with_ids(*pairs[1])
    assert ours.summary(normalize) == ref.summary(normalize)
    assert [r["track_id"] for r in ours.summary()] == list(range(5, 5 + len(ours)))


def test_verbose_and_empty_results_equal_ultralytics(pairs):
    for ref, ours in pairs:
        assert ours.verbose() == ref.verbose()
        assert ours.verbose().endswith(", ") and "s, " in "".join(r.verbose() for _, r in pairs)
    ref, ours = pairs[0]
    ref_none, none = ref[ref.boxes.conf > 2], ours[ours.boxes.conf > 2]
    assert none.verbose() == ref_none.verbose() == "(no detections), "
    assert none.summary() == ref_none.summary() == [] and none.to_json() == "[]"


def test_save_txt_writes_and_appends_as_ultralytics(pairs, tmp_path):
    for k, (ref, ours) in enumerate(pairs):
        for save_conf in (False, True):  # two calls on one file: both append
            want = ref.save_txt(tmp_path / f"ref{k}.txt", save_conf=save_conf)
            got = ours.save_txt(tmp_path / f"ours{k}.txt", save_conf=save_conf)
            assert str(got) == want.replace("ref", "ours")
        text = (tmp_path / f"ours{k}.txt").read_text()
        assert text == (tmp_path / f"ref{k}.txt").read_text() and len(text.splitlines()) == 2 * len(ours)
    ref, ours = with_ids(*pairs[2])
    ref.save_txt(tmp_path / "ref-tracked" / "a.txt", save_conf=True)
    ours.save_txt(tmp_path / "ours-tracked" / "a.txt", save_conf=True)
    lines = (tmp_path / "ours-tracked" / "a.txt").read_text().splitlines()
    assert lines == (tmp_path / "ref-tracked" / "a.txt").read_text().splitlines()
    assert [line.split()[-1] for line in lines] == [str(i) for i in range(5, 5 + len(ours))]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_save_txt_leaves_out_outlines_of_fewer_than_three_points(tmp_path):
    frame = np.zeros((20, 30, 3), np.uint8)
    dot, square = np.ones((1, 1), np.uint8), np.ones((4, 5), np.uint8)
    boxes = Boxes(np.array([[2, 2, 3, 3], [10, 10, 15, 14]], np.float32), np.array([0.9, 0.8], np.float32),
                  np.array([1, 0], np.int64), (20, 30))
    r = Results(frame, None, {0: "a", 1: "b"}, boxes, Masks((dot, square), np.array([[2, 2], [10, 10]]), (20, 30)))
    r.save_txt(tmp_path / "labels.txt")
    assert (tmp_path / "labels.txt").read_text() == "0 0.333333 0.5 0.333333 0.65 0.466667 0.65 0.466667 0.5\n"
    assert r[0].save_txt(tmp_path / "none.txt") == tmp_path / "none.txt" and not (tmp_path / "none.txt").exists()


def test_save_crop_writes_the_files_ultralytics_writes(pairs, tmp_path):
    for k, (ref, ours) in enumerate(pairs[:4]):
        ref.save_crop(tmp_path / "ref", file_name=f"image{k % 2}.png")  # two images share a name: -2, -3, ...
        written = ours.save_crop(tmp_path / "ours", file_name=f"image{k % 2}.png")
        assert len(written) == len(ours)
    want = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*.jpg"))
    got = sorted(p.relative_to(tmp_path / "ours") for p in (tmp_path / "ours").rglob("*.jpg"))
    assert got == want and any("-2" in p.name for p in got)
    for name in got:
        ours, theirs = cv2.imread(str(tmp_path / "ours" / name)), cv2.imread(str(tmp_path / "ref" / name))
        assert ours.shape == theirs.shape
        # Ultralytics encodes with Pillow, edgeseg with OpenCV, both quality 95 without chroma subsampling
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 3, name
    _, r = pairs[0]
    first = r.save_crop(tmp_path / "check", "x")
    crops = box_crops(r)
    assert all(cv2.imread(str(p)).shape == c.shape for p, c in zip(first, crops, strict=True))
    with pytest.raises(ConfigError, match="file_name"):
        r.save_crop(tmp_path, "")


def test_plot_equals_the_annotators_and_follows_ultralytics_options(pairs):
    _, r = pairs[0]
    everything = compose(MaskAnnotator(), BoxAnnotator(), LabelAnnotator()).annotate(r.orig_img, r)
    drawn = r.plot()
    assert drawn.shape == r.orig_img.shape and drawn.dtype == np.uint8 and not np.shares_memory(drawn, r.orig_img)
    np.testing.assert_array_equal(drawn, everything)
    np.testing.assert_array_equal(drawn, annotate.plot(r))  # the CLI's and the demo's call
    np.testing.assert_array_equal(r.plot(boxes=False), MaskAnnotator().annotate(r.orig_img, r))  # labels need boxes
    np.testing.assert_array_equal(r.plot(masks=False, labels=False, conf=False), BoxAnnotator().annotate(r.orig_img, r))
    names_only = compose(BoxAnnotator(3), LabelAnnotator(1.5, show_conf=False))
    np.testing.assert_array_equal(r.plot(conf=False, masks=False, line_width=3, font_size=1.5),
                                  names_only.annotate(r.orig_img, r))
    other = np.full_like(r.orig_img, 200)
    np.testing.assert_array_equal(r.plot(img=other), compose(MaskAnnotator(), BoxAnnotator(),
                                                              LabelAnnotator()).annotate(other, r))
    with pytest.raises(ConfigError, match="track IDs"):
        r.plot(color_by="track")
    with pytest.raises(ValueError, match="frame is"):
        r.plot(img=other[:10])


def test_save_writes_the_plot_atomically_and_returns_the_path(pairs, tmp_path, monkeypatch):
    _, r = pairs[0]
    path = r.save(tmp_path / "deep" / "out.png", conf=False)
    assert path == tmp_path / "deep" / "out.png"
    np.testing.assert_array_equal(cv2.imread(str(path)), r.plot(conf=False))
    monkeypatch.chdir(tmp_path)
    default = r.save()
    assert str(default) == "results_image0.jpg" and (tmp_path / default).is_file()  # Ultralytics' default name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "results_image0.jpg"]
    with pytest.raises(OutputError, match="cannot encode"):
        r.save(tmp_path / "x.mpo")


def test_show_says_what_to_do_without_a_gui_or_a_display(pairs, monkeypatch):
    _, r = pairs[0]
    calls = []
    monkeypatch.setattr(cv2, "imshow", lambda name, image: calls.append((name, image)))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: calls.append(ms))
    monkeypatch.setattr(annotate, "_gui_build", lambda: True)
    monkeypatch.setenv("DISPLAY", ":0")
    r.show(wait_ms=1, masks=False)
    assert calls[0][0] == r.path and calls[1] == 1
    np.testing.assert_array_equal(calls[0][1], r.plot(masks=False))

    def not_implemented(name, image):  # what opencv-python-headless's imshow raises
        raise cv2.error("OpenCV(5.0.0) window.cpp:1: error: (-2:Unspecified error) The function is not implemented. "
                        "Rebuild the library with Windows, GTK+ 2.x or Cocoa support in function 'cvShowImage'\n")

    monkeypatch.setattr(cv2, "imshow", not_implemented)
    headless = "pip uninstall opencv-python-headless && pip install opencv-python, or .* save"
    with pytest.raises(OutputError, match=headless) as raised:
        r.show()
    assert "\n" not in str(raised.value)
    monkeypatch.setattr(annotate, "_gui_build", lambda: False)  # found from the build information first
    with pytest.raises(OutputError, match=headless):
        r.show()
    # a GUI build on Linux without a display would abort the process inside imshow: refused before it
    monkeypatch.setattr(annotate, "_gui_build", lambda: True)
    monkeypatch.setattr(annotate.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(OutputError, match=r"needs a display .* save\(filename\)"):
        r.show()


def test_predict_and_track_show_each_result_or_say_why_they_cannot(monkeypatch, tmp_path):
    """Ultralytics' show=True: each result in a window as it comes (waitKey(1)); without a GUI build or a display an
    OutputError pointing to --view, before anything runs (not even the missing source is looked at)."""
    from edgeseg.app.synthetic import panning_frames
    from edgeseg.assets import demo_model_path

    seg = Segmenter(demo_model_path())
    frames = list(panning_frames(160, 120, 3, 3, seed=1))
    calls = []
    monkeypatch.setattr(cv2, "imshow", lambda name, image: calls.append(name))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: calls.append(ms))
    monkeypatch.setattr(annotate, "_gui_build", lambda: True)
    monkeypatch.setenv("DISPLAY", ":0")
    shown = seg.predict(frames, show=True)
    assert calls == [n for r in shown for n in (r.path, 1)] and len(shown) == 3
    calls.clear()
    tracked = list(seg.track(frames, show=True, stream=True))
    assert calls[1::2] == [1, 1, 1] and len(tracked) == 3
    monkeypatch.setattr(annotate, "_gui_build", lambda: False)
    for call in (seg.predict, seg.track):
        with pytest.raises(OutputError, match="--view 8080"):
            call(tmp_path / "missing.jpg", show=True)
    with pytest.raises(ConfigError, match="show must be True or False"):
        seg.predict(frames, show="yes")

"""Ultralytics' recipes ported as a user would: the same code with `YOLO(...)` replaced by `Segmenter(...)` and
`.cpu()` / `.numpy()` dropped, run on the shared model, against the same code run under Ultralytics on the same ONNX
file: edgeseg's default against retina_masks=True, edgeseg's retina_masks=False against Ultralytics' default. The same
cut-out files pixel for pixel, the same polygons, the same track ids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import Segmenter

OPTIONS = [("black", False), ("black", True), ("transparent", False), ("transparent", True)]


def isolation_recipe(results, out: Path, background: str, crop: bool, ultralytics: bool) -> list[str]:
    """The "isolating segmentation objects" recipe, verbatim but for the lines marked PORT."""
    written = []
    for r in results:
        img = np.copy(r.orig_img)
        img_name = Path(r.path).stem
        for ci, c in enumerate(r):
            label = c.names[c.boxes.cls.tolist().pop()]
            b_mask = np.zeros(img.shape[:2], np.uint8)
            contour = c.masks.xy.pop()
            contour = contour.astype(np.int32)
            contour = contour.reshape(-1, 1, 2)
            _ = cv2.drawContours(b_mask, [contour], -1, (255, 255, 255), cv2.FILLED)
            if background == "black":
                mask3ch = cv2.cvtColor(b_mask, cv2.COLOR_GRAY2BGR)
                isolated = cv2.bitwise_and(mask3ch, img)
            else:
                isolated = np.dstack([img, b_mask])
            if crop:
                if ultralytics:
                    x1, y1, x2, y2 = c.boxes.xyxy.cpu().numpy().squeeze().astype(np.int32)
                else:  # PORT: .cpu().numpy() dropped
                    x1, y1, x2, y2 = c.boxes.xyxy.squeeze().astype(np.int32)
                isolated = isolated[y1:y2, x1:x2]
            name = out / f"{img_name}_{label}-{ci}.png"
            cv2.imwrite(str(name), isolated)
            written.append(name.name)
    return written


@pytest.fixture(scope="module", params=[True, False], ids=["retina", "input-frame"])
def both(request, shapes_onnx, val_images):
    ultralytics = pytest.importorskip("ultralytics")
    sources = [str(p) for p in val_images[:12]]
    model = ultralytics.YOLO(str(shapes_onnx), task="segment")
    if request.param:
        theirs = model.predict(sources, retina_masks=True, verbose=False)
        ours = Segmenter(shapes_onnx).predict(sources)  # PORT: Segmenter for YOLO; source-resolution masks by default
    else:
        theirs = model.predict(sources, verbose=False)  # Ultralytics' default: masks at the network's input size
        ours = Segmenter(shapes_onnx, retina_masks=False).predict(sources)
    return ours, theirs


@pytest.mark.parametrize("background, crop", OPTIONS)
def test_isolation_recipe_writes_the_same_files(both, tmp_path, background, crop):
    ours, theirs = both
    mine, reference = tmp_path / "edgeseg", tmp_path / "ultralytics"
    mine.mkdir()
    reference.mkdir()
    names = isolation_recipe(ours, mine, background, crop, ultralytics=False)
    expected = isolation_recipe(theirs, reference, background, crop, ultralytics=True)
    assert names == expected and len(names) > 30
    for name in names:
        a = cv2.imread(str(mine / name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(reference / name), cv2.IMREAD_UNCHANGED)
        assert a.shape == b.shape and np.array_equal(a, b), name


def test_the_polygons_are_ultralytics_polygons(both):
    ours, theirs = both
    compared = 0
    for a, b in zip(ours, theirs, strict=True):
        assert len(a) == len(b)
        for p, q in zip(a.masks.xy, b.masks.xy, strict=True):
            assert np.array_equal(p, q)
            compared += 1
    assert compared > 30


def test_the_masks_are_ultralytics_masks(both):
    """masks.data in the frame Ultralytics gives (source, or network input), equal pixel for pixel; the boxes too."""
    ours, theirs = both
    for a, b in zip(ours, theirs, strict=True):
        assert a.masks.shape == tuple(b.masks.data.shape)
        assert np.array_equal(a.masks.data, b.masks.data.numpy())
        assert np.allclose(a.boxes.xyxy, b.boxes.xyxy.numpy(), atol=1e-3)
        assert np.array_equal(a.boxes.cls, b.boxes.cls.numpy().astype(np.int64))


def test_input_frame_masks_come_to_the_source_as_ultralytics_draws_them(both):
    """to_source(), what plot, isolate(source="mask") and to_coco use: Ultralytics' scale_masks(...) > 0.5."""
    from ultralytics.utils import ops

    ours, theirs = both
    for a, b in zip(ours, theirs, strict=True):
        source = a.masks.to_source()
        assert source.shape == (len(a), *a.orig_shape) and source.input_shape is None
        if a.masks.input_shape is None:
            assert source is a.masks
        elif len(a):
            expected = ops.scale_masks(b.masks.data[None].float(), a.orig_shape)[0] > 0.5
            assert np.array_equal(source.data, expected.numpy().astype(np.uint8))


@pytest.mark.parametrize("background, crop", OPTIONS)
def test_isolate_from_the_outline_is_the_recipe(both, background, crop):
    """r.isolate(source="contour") cuts out what the recipe cuts out, in either mask frame."""
    ours, _ = both
    compared = 0
    for r in ours:
        cutouts = r.isolate(background=background, crop=crop, source="contour")
        img = r.orig_img
        for c, cutout in zip(r, cutouts, strict=True):
            b_mask = np.zeros(img.shape[:2], np.uint8)
            cv2.drawContours(b_mask, [c.masks.xy[0].astype(np.int32).reshape(-1, 1, 2)], -1, 255, cv2.FILLED)
            isolated = (cv2.bitwise_and(cv2.cvtColor(b_mask, cv2.COLOR_GRAY2BGR), img) if background == "black"
                        else np.dstack([img, b_mask]))
            if crop:
                x1, y1, x2, y2 = c.boxes.xyxy.squeeze().astype(np.int32)
                isolated = isolated[y1:y2, x1:x2]
            assert np.array_equal(cutout, isolated)
            compared += 1
    assert compared > 30


def tracking_loop(model, video: Path, ultralytics: bool, **track_args) -> list[list[tuple[int, np.ndarray]]]:
    """The "instance segmentation and tracking" loop, verbatim but for the lines marked PORT and the drawing (the
    recipe draws with Ultralytics' annotator; here each frame's (track id, polygon) pairs are kept instead)."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ret, im0 = cap.read()
        if not ret:
            break
        drawn = []
        results = model.track(im0, persist=True, **track_args)
        if results[0].boxes.id is not None and results[0].masks is not None:
            masks = results[0].masks.xy
            if ultralytics:
                track_ids = results[0].boxes.id.int().cpu().tolist()
            else:  # PORT: .int().cpu() dropped: the ids are int64 already
                track_ids = results[0].boxes.id.tolist()
            for mask, track_id in zip(masks, track_ids, strict=True):
                drawn.append((track_id, mask))
        frames.append(drawn)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A panning camera over one synthetic scene, 30 frames of MJPG: both sides read the same decoded frames."""
    from edgeseg.app.synthetic import panning_frames

    path = tmp_path_factory.mktemp("loop") / "pan.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (480, 360))
    for frame in panning_frames(480, 360, 8, 30, seed=3, step=(5, 2)):
        out.write(frame)
    out.release()
    return path


@pytest.mark.parametrize("retina", [True, False], ids=["retina", "input-frame"])
@pytest.mark.parametrize("tracker", ["bytetrack.yaml", "botsort.yaml"])
def test_tracking_loop_gives_the_same_ids_and_polygons(shapes_onnx, video, tracker, retina):
    ultralytics = pytest.importorskip("ultralytics")
    theirs = tracking_loop(ultralytics.YOLO(str(shapes_onnx), task="segment"), video, True, tracker=tracker,
                           retina_masks=retina, verbose=False)
    ours = tracking_loop(Segmenter(shapes_onnx, retina_masks=retina), video, False, tracker=tracker)
    assert len(ours) == len(theirs) == 30
    tracked = 0
    for mine, reference in zip(ours, theirs, strict=True):
        # edgeseg keeps the detector's order (most confident first); Ultralytics orders by track
        mine, reference = dict(mine), dict(reference)
        assert len(mine) == len(reference) and mine.keys() == reference.keys()
        for track_id, polygon in mine.items():
            assert np.array_equal(polygon, reference[track_id]), track_id
        tracked += len(mine)
    assert tracked > 100

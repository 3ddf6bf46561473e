"""Ultralytics' recipes ported as a user would: the same code with `YOLO(...)` replaced by `Segmenter(...)` and
`.cpu()` / `.numpy()` dropped, run on the shared model, against the same code run under Ultralytics on the same ONNX
file with retina_masks=True (edgeseg's masks are those): the same cut-out files, pixel for pixel."""

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


@pytest.fixture(scope="module")
def both(shapes_onnx, val_images):
    ultralytics = pytest.importorskip("ultralytics")
    sources = [str(p) for p in val_images[:12]]
    theirs = ultralytics.YOLO(str(shapes_onnx), task="segment").predict(sources, retina_masks=True, verbose=False)
    ours = Segmenter(shapes_onnx).predict(sources)  # PORT: Segmenter for YOLO; masks at source resolution by default
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

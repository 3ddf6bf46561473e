"""Object isolation against the classic per-object OpenCV recipe, edge cases, and the files it writes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.outputs.isolate import box_crops, safe_label
from edgeseg.results import Boxes, Masks, Results
from tests.helpers.common import mask_iou


def classic_recipe(result, i: int, background: str, crop: bool, polygon: np.ndarray | None = None) -> np.ndarray:
    """What users write by hand: a full-frame mask from the outline (or the mask itself), then bitwise_and or an
    alpha channel, then the crop of the integer box."""
    frame = result.orig_img
    if polygon is not None:
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.drawContours(mask, [polygon.astype(np.int32)], -1, 255, cv2.FILLED)
    else:
        mask = result.masks.dense(i) * 255
    out = cv2.bitwise_and(frame, frame, mask=mask) if background == "black" else np.dstack([frame, mask])
    if crop:
        x1, y1, x2, y2 = result.boxes.xyxy[i].astype(np.int32)
        out = out[y1:y2, x1:x2]
    return out


@pytest.fixture(scope="module")
def scenes(shapes_onnx, val_images):
    """Results on validation images at their own size and at two other aspect ratios."""
    seg = Segmenter(shapes_onnx)
    images = [cv2.imread(str(p)) for p in val_images[:8]]
    images += [cv2.resize(images[0], (1280, 720)), cv2.resize(images[1], (333, 517))]
    results = [seg(image)[0] for image in images]
    assert sum(len(r) for r in results) > 40
    return results


@pytest.mark.parametrize("background", ["black", "transparent"])
@pytest.mark.parametrize("crop", [True, False])
def test_contour_cutouts_equal_the_classic_recipe(scenes, background, crop):
    for r in scenes:
        cutouts = r.isolate(background=background, crop=crop, source="contour")
        assert len(cutouts) == len(r)
        for i, cutout in enumerate(cutouts):
            expected = classic_recipe(r, i, background, crop, polygon=r.masks.xy[i])
            assert cutout.dtype == np.uint8 and cutout.shape == expected.shape
            np.testing.assert_array_equal(cutout, expected)


@pytest.mark.parametrize("background", ["black", "transparent"])
@pytest.mark.parametrize("crop", [True, False])
def test_mask_cutouts_equal_the_recipe_on_the_mask(scenes, background, crop):
    for r in scenes:
        for i, cutout in enumerate(r.isolate(background=background, crop=crop, source="mask")):
            np.testing.assert_array_equal(cutout, classic_recipe(r, i, background, crop))


def test_mask_cutouts_agree_with_the_contour_recipe(scenes):
    """The issue's tolerance: the mask's cut-out covers what the contour recipe covers, IoU >= 0.98 on average."""
    ious = []
    for r in scenes:
        for i, cutout in enumerate(r.isolate(background="transparent", crop=True, source="mask")):
            recipe = classic_recipe(r, i, "transparent", True, polygon=r.masks.xy[i])
            ious.append(mask_iou(cutout[:, :, 3] > 0, recipe[:, :, 3] > 0))
    assert np.mean(ious) >= 0.98


def test_one_object_isolates_alone(scenes):
    r = next(r for r in scenes if len(r) > 2)
    both = r.isolate("transparent")
    np.testing.assert_array_equal(r[2].isolate("transparent")[0], both[2])
    assert len(r[r.boxes.conf > 2].isolate()) == 0


@pytest.mark.parametrize("crop", [True, False])
def test_cutouts_placed_at_their_origins_give_back_the_mask(scenes, crop):
    """isolate(return_origins=True): each cut-out's alpha, pasted at its origin into an empty frame, is the object's
    mask over the cut-out's region (the truncated integer box, or the frame), and nothing else."""
    differs = 0
    for r in scenes:
        cutouts, origins = r.isolate("transparent", crop=crop, return_origins=True)
        assert origins.dtype == np.int64 and origins.shape == (len(r), 2)
        np.testing.assert_array_equal(origins, np.trunc(r.boxes.xyxy[:, :2]) if crop else 0)
        for plain, placed in zip(r.isolate("black", crop=crop), r.isolate("black", crop, return_origins=True)[0],
                                 strict=True):
            np.testing.assert_array_equal(plain, placed)
        for i, (cutout, (x, y)) in enumerate(zip(cutouts, origins, strict=True)):
            h, w = cutout.shape[:2]
            placed = np.zeros(r.orig_shape, np.uint8)
            placed[y : y + h, x : x + w] = cutout[:, :, 3]
            region = np.zeros(r.orig_shape, bool)
            region[y : y + h, x : x + w] = True
            np.testing.assert_array_equal(placed, r.masks.dense(i) * 255 * region)
            # masks.crops[i] follows the pixel box instead: it starts where the integer box does, or a pixel later
            assert np.all(r.masks.origins[i] - origins[i] <= 1) or not crop
            differs += bool(crop and np.any(r.masks.origins[i] != origins[i]))
    assert not crop or differs > 0, "the scenes show no object whose two boxes differ: the test shows nothing"
    empty = scenes[0][scenes[0].boxes.conf > 2].isolate(crop=crop, return_origins=True)
    assert empty[0] == [] and empty[1].shape == (0, 2) and empty[1].dtype == np.int64


def hand_made_result(frame: np.ndarray, xyxy, crops, origins, names=None) -> Results:
    n = len(xyxy)
    boxes = Boxes(np.array(xyxy, np.float32).reshape(n, 4), np.full(n, 0.9, np.float32), np.arange(n, dtype=np.int64),
                  frame.shape[:2])
    masks = Masks(tuple(np.asarray(c, np.uint8) for c in crops), np.array(origins, np.int64).reshape(n, 2),
                  frame.shape[:2])
    return Results(frame, "frames/scene.jpg", names or {i: f"c{i}" for i in range(n)}, boxes, masks)


def test_boxes_at_the_frame_edge_and_empty_boxes():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    r = hand_made_result(
        frame,
        [[0, 0, 10.7, 8.2], [45.5, 30.1, 50, 40], [20.3, 20, 20.9, 25], [5, 5, 5, 5]],
        [np.ones((9, 11)), np.ones((10, 4)), np.ones((5, 1)), np.zeros((0, 0))],
        [[0, 0], [46, 30], [21, 20], [5, 5]],
    )
    black = r.isolate("black")
    assert [c.shape for c in black] == [(8, 10, 3), (10, 5, 3), (5, 0, 3), (0, 0, 3)]
    np.testing.assert_array_equal(black[0], frame[0:8, 0:10])  # the mask's ninth row and eleventh column are cut
    np.testing.assert_array_equal(black[1][:, 0], 0)  # column 45 is in the box but not in the mask
    np.testing.assert_array_equal(black[1][:, 1:], frame[30:40, 46:50])
    full = r.isolate("transparent", crop=False)
    assert all(c.shape == (40, 50, 4) for c in full)
    assert full[3][:, :, 3].max() == 0 and full[2][:, :, 3].sum() == 5 * 255
    for i in range(len(r)):
        np.testing.assert_array_equal(full[i], classic_recipe(r, i, "transparent", False))
        np.testing.assert_array_equal(black[i], classic_recipe(r, i, "black", True))


def test_bad_options_are_config_errors(scenes):
    with pytest.raises(ConfigError, match="background"):
        scenes[0].isolate(background="white")
    with pytest.raises(ConfigError, match="source"):
        scenes[0].isolate(source="polygon")
    with pytest.raises(ConfigError, match="crop"):
        scenes[0].isolate(crop="yes")


def test_box_crops_equal_ultralytics_save_one_box(scenes):
    plotting = pytest.importorskip("ultralytics.utils.plotting")
    torch = pytest.importorskip("torch")
    for r in scenes[:4]:
        for box, crop in zip(r.boxes.xyxy, box_crops(r), strict=True):
            expected = plotting.save_one_box(torch.tensor(box), r.orig_img, BGR=True, save=False)
            np.testing.assert_array_equal(crop, expected)


@pytest.mark.parametrize("name, label", [("../../etc/x", "_.._etc_x"), ("a/b", "a_b"),
                                         ("traffic light", "traffic_light"), ("..", "object"), ("", "object"),
                                         ("C:\\x", "C_x"), ("straße", "stra_e")])
def test_safe_label(name, label):
    assert safe_label(name) == label


def test_save_isolated_names_files_and_stays_inside_the_folder(tmp_path):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    r = hand_made_result(frame, [[1, 1, 9, 9], [10, 10, 20, 25], [0, 0, 0.5, 3]],
                         [np.ones((8, 8)), np.eye(15, 10), np.ones((3, 1))], [[1, 1], [10, 10], [0, 0]],
                         names={0: "../../etc/x", 1: "a/b", 2: "dot"})
    out = tmp_path / "out"
    written = r.save_isolated(out, background="transparent", save_mask=True, save_crop=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written) == sorted([
        "scene__.._etc_x-0.png", "scene__.._etc_x-0_mask.png", "scene__.._etc_x-0_crop.png",
        "scene_a_b-1.png", "scene_a_b-1_mask.png", "scene_a_b-1_crop.png"])  # object 2's cut-out is empty: skipped
    assert all(p.parent == out for p in written) and not list(tmp_path.glob("etc*"))
    cutout = cv2.imread(str(out / "scene_a_b-1.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cutout, r.isolate("transparent")[1])
    mask = cv2.imread(str(out / "scene_a_b-1_mask.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.eye(15, 10, dtype=np.uint8) * 255)
    assert r.save_isolated(out, stem="../up")[0].name == "_up__.._etc_x-0.png"  # a caller's stem is made safe too


def test_save_isolated_unwritable_folder_is_an_output_error(tmp_path, scenes):
    from edgeseg import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write"):
        scenes[0].save_isolated(blocker / "out")


def test_an_image_format_without_an_encoder_is_an_output_error(tmp_path, scenes):
    """OpenCV reads .mpo and .dng but raises (not returns False) when asked to write them."""
    from edgeseg import OutputError
    from edgeseg.outputs.files import write_image

    with pytest.raises(OutputError, match="cannot encode"):
        write_image(tmp_path / "x.mpo", scenes[0].orig_img)
    assert not list(tmp_path.iterdir())

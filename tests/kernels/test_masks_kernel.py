"""Box-region masks against a full-frame NumPy reference and Ultralytics' process_mask_native; box scaling against
scale_boxes."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.inputs.letterbox import Letterbox, box_pixels, content_box, mask_geometry
from edgeseg.kernels.masks import input_masks_to_source, masks_in_boxes
from edgeseg.postprocess.cpu import Detections, to_input_frame, to_source
from tests.helpers import naive
from tests.helpers.random_inputs import random_boxes, random_prototypes

# (prototype grid, source image) pairs; the comment is the upsample mask_geometry picks
CASES = [
    ((160, 160), (500, 700)),  # 4
    ((160, 160), (333, 517)),  # 2
    ((160, 160), (640, 640)),  # 1
    ((160, 160), (480, 640)),  # 1, padded rows
    ((160, 160), (31, 97)),  # 4, tiny and odd
    ((160, 160), (97, 31)),  # 4, the other orientation
    ((160, 160), (2, 300)),  # 2, thin
    ((160, 160), (1, 1)),  # 1
    ((120, 160), (720, 1280)),  # a 480x640 model on a 16:9 image
    ((40, 40), (333, 517)),  # 4
    ((24, 40), (64, 64)),  # 1, the prototype grid is padded, not the image
    ((20, 32), (333, 517)),  # 2
    ((20, 32), (97, 31)),  # 4
]
# the fraction of a box's pixels allowed to differ from Ultralytics (float sums in another order than BLAS)
MAX_MISMATCH = 1e-4


def place(flat: np.ndarray, offsets: np.ndarray, bounds: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The kernel's box crops placed in full frames (N, H, W) uint8."""
    dense = np.zeros((len(bounds), *shape), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(bounds):
        dense[i, y0:y1, x0:x1] = flat[offsets[i] : offsets[i + 1]].reshape(y1 - y0, x1 - x0)
    return dense


def kernel_masks(protos, coefs, boxes, shape) -> np.ndarray:
    upsample, crop = mask_geometry(protos.shape[1:], shape)
    bounds = box_pixels(boxes, shape)
    flat, offsets = masks_in_boxes(protos, coefs, bounds, upsample, crop, shape)
    assert flat.dtype == np.uint8 and set(np.unique(flat)) <= {0, 1}
    np.testing.assert_array_equal(np.diff(offsets), (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1]))
    return place(flat, offsets, bounds, shape)


def ultralytics_masks(protos, coefs, boxes, shape) -> np.ndarray:
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import process_mask_native

    return process_mask_native(torch.from_numpy(protos), torch.from_numpy(coefs), torch.from_numpy(boxes),
                               shape).numpy()


# --- geometry ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_shape, upsample", [((500, 700), 4), ((333, 517), 2), ((640, 640), 1), ((480, 640), 1),
                                                   ((720, 1280), 1), ((31, 97), 4), ((2, 300), 2), ((1, 1), 1)])
def test_mask_geometry_upsample_for_a_160_grid(image_shape, upsample):
    assert mask_geometry((160, 160), image_shape)[0] == upsample


def test_mask_geometry_matches_ultralytics_formulas():
    rng = np.random.default_rng(0)
    grids = [(160, 160), (120, 160), (160, 120), (80, 80), (40, 40), (24, 40), (20, 32)]
    shapes = [tuple(int(v) for v in s) for s in rng.integers(1, 2500, (60, 2))] + [(1, 1), (1, 4000), (4000, 1)]
    for grid in grids:
        for shape in shapes:
            upsample, (top, left, bottom, right) = mask_geometry(grid, shape)
            assert (upsample, (top, left, bottom, right)) == naive.mask_geometry(grid, shape), (grid, shape)
            assert 0 <= top < bottom <= grid[0] * upsample and 0 <= left < right <= grid[1] * upsample


def test_box_pixels_is_the_crop_mask_rule():
    # Ultralytics keeps column c when x1 <= c < x2 (and rows alike); box_pixels must give exactly that range
    rng = np.random.default_rng(1)
    shape = (37, 53)
    boxes = np.concatenate([rng.uniform(-5, 60, (500, 4)),  # anything, including reversed and outside boxes
                            rng.integers(-2, 56, (200, 4)),  # whole numbers: the edge cases of the rule
                            rng.integers(0, 55, (100, 4)) + np.float32(0.5)]).astype(np.float32)
    px = box_pixels(boxes, shape)
    assert px.dtype == np.int64
    cols, rows = np.arange(shape[1], dtype=np.float32), np.arange(shape[0], dtype=np.float32)
    for box, (x0, y0, x1, y1) in zip(boxes, px, strict=True):
        kept_cols = np.flatnonzero((cols >= box[0]) & (cols < box[2]))
        kept_rows = np.flatnonzero((rows >= box[1]) & (rows < box[3]))
        assert 0 <= x0 <= shape[1] and 0 <= y0 <= shape[0] and 0 <= x1 <= shape[1] and 0 <= y1 <= shape[0]
        np.testing.assert_array_equal(kept_cols, np.arange(x0, x1))
        np.testing.assert_array_equal(kept_rows, np.arange(y0, y1))


# --- masks_in_boxes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grid, shape", CASES, ids=[f"{g[0]}x{g[1]}-{s[0]}x{s[1]}" for g, s in CASES])
def test_masks_in_boxes_matches_the_full_frame_numpy_reference(grid, shape):
    rng = np.random.default_rng(grid[0] + shape[0] * 7 + shape[1])
    protos = random_prototypes(rng, grid)
    boxes = random_boxes(rng, 10, shape)
    coefs = rng.normal(0, 0.4, (len(boxes), 32)).astype(np.float32)
    ours = kernel_masks(protos, coefs, boxes, shape)
    expected = naive.masks_full_frame(protos, coefs, boxes, shape)
    # the reference sums the prototypes in the kernel's order, so nothing may differ
    np.testing.assert_array_equal(ours, expected)
    if min(shape) > 2:
        assert expected.any(axis=(1, 2)).sum() >= 5  # the test has real masks in it


@pytest.mark.parametrize("grid, shape", CASES, ids=[f"{g[0]}x{g[1]}-{s[0]}x{s[1]}" for g, s in CASES])
def test_masks_in_boxes_matches_ultralytics_process_mask_native(grid, shape):
    rng = np.random.default_rng(1000 + grid[1] + shape[0] * 3 + shape[1])
    protos = random_prototypes(rng, grid)
    boxes = random_boxes(rng, 10, shape)
    coefs = rng.normal(0, 0.4, (len(boxes), 32)).astype(np.float32)
    ours = kernel_masks(protos, coefs, boxes, shape)
    expected = ultralytics_masks(protos, coefs, boxes, shape)
    assert ours.shape == expected.shape
    bounds = box_pixels(boxes, shape)
    areas = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])
    mismatches = (ours != expected).sum(axis=(1, 2))
    # measured: no pixel differs in any of these cases; allow a few, as BLAS may sum in another order
    assert (mismatches <= np.maximum(1, MAX_MISMATCH * areas)).all(), \
        f"mismatching pixels per box {mismatches.tolist()}"


def test_masks_in_boxes_zero_area_and_empty_inputs():
    rng = np.random.default_rng(2)
    protos = random_prototypes(rng, (40, 40), nm=8)
    coefs = rng.normal(size=(3, 8)).astype(np.float32)
    bounds = np.array([[5, 5, 5, 9], [0, 0, 0, 0], [3, 4, 3, 4]], np.int64)
    flat, offsets = masks_in_boxes(protos, coefs, bounds, 1, (0, 0, 40, 40), (40, 40))
    assert flat.shape == (0,) and offsets.tolist() == [0, 0, 0, 0]
    flat, offsets = masks_in_boxes(protos, np.empty((0, 8), np.float32), np.empty((0, 4), np.int64), 1, (0, 0, 40, 40),
                                   (40, 40))
    assert flat.shape == (0,) and offsets.tolist() == [0]


def test_masks_in_boxes_one_pixel_boxes_equal_the_full_frame():
    rng = np.random.default_rng(3)
    shape = (333, 517)
    protos = random_prototypes(rng, (160, 160))
    ys, xs = rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)
    boxes = np.stack([xs, ys, xs + 1, ys + 1], axis=1).astype(np.float32)
    boxes[:4] = [[0, 0, 1, 1], [516, 0, 517, 1], [0, 332, 1, 333], [516, 332, 517, 333]]  # the four corners
    coefs = rng.normal(0, 0.4, (40, 32)).astype(np.float32)
    np.testing.assert_array_equal(kernel_masks(protos, coefs, boxes, shape),
                                  naive.masks_full_frame(protos, coefs, boxes, shape))


@pytest.mark.parametrize("protos_shape, coefs_shape, bounds, upsample, crop", [
    ((8, 40, 40), (1, 7), [[0, 0, 4, 4]], 1, (0, 0, 40, 40)),  # coefficient count != prototype count
    ((40, 40), (1, 8), [[0, 0, 4, 4]], 1, (0, 0, 40, 40)),  # prototypes not 3-D
    ((8, 40, 40), (2, 8), [[0, 0, 4, 4]], 1, (0, 0, 40, 40)),  # one box for two objects
    ((8, 40, 40), (1, 8), [[-1, 0, 4, 4]], 1, (0, 0, 40, 40)),  # box off the left
    ((8, 40, 40), (1, 8), [[0, 0, 4, 101]], 1, (0, 0, 40, 40)),  # box off the bottom
    ((8, 40, 40), (1, 8), [[0, 0, 4, 4]], 3, (0, 0, 40, 40)),  # upsample 3
    ((8, 40, 40), (1, 8), [[0, 0, 4, 4]], 1, (0, 0, 41, 40)),  # crop past the grid
    ((8, 40, 40), (1, 8), [[0, 0, 4, 4]], 2, (5, 0, 5, 80)),  # empty crop
])
def test_masks_in_boxes_rejects_bad_arguments(protos_shape, coefs_shape, bounds, upsample, crop):
    with pytest.raises(ValueError, match="must|bad upsample"):
        masks_in_boxes(np.zeros(protos_shape, np.float32), np.zeros(coefs_shape, np.float32),
                       np.array(bounds, np.int64), upsample, crop, (100, 100))


# --- boxes and the whole to_source step against Ultralytics -----------------------------------------------------------

@pytest.mark.parametrize("imgsz", [(640, 640), (480, 640), (384, 640)])
@pytest.mark.parametrize("auto", [False, True])
def test_boxes_to_source_matches_ultralytics_scale_boxes(imgsz, auto):
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(imgsz[0] + auto)
    shapes = [(1, 1), (1, 1000), (2, 3), (37, 53), (479, 641), (720, 1280), (1280, 720), (333, 517), (3000, 2),
              (500, 700)] + [tuple(int(v) for v in s) for s in rng.integers(1, 2000, (10, 2))]
    for shape in shapes:
        lb = Letterbox.fit(shape, imgsz, auto=auto)
        h, w = lb.dst_shape
        boxes = rng.uniform(-50, max(h, w) + 50, (200, 4)).astype(np.float32)  # some outside: they get clipped
        boxes[:, 2:] = boxes[:, :2] + np.abs(boxes[:, 2:] - boxes[:, :2])
        before = boxes.copy()
        ours = lb.boxes_to_source(boxes)
        np.testing.assert_array_equal(boxes, before)  # a new array; the input is left alone
        assert ours.dtype == np.float32
        expected = scale_boxes(lb.dst_shape, torch.from_numpy(boxes.copy()), shape).numpy()
        np.testing.assert_array_equal(ours, expected, err_msg=f"{shape} in {lb.dst_shape}")


def test_to_source_matches_ultralytics_retina_masks():
    """to_source against what Ultralytics' SegmentationPredictor does with retina_masks=True: scale_boxes,
    process_mask_native, then drop objects whose mask is empty."""
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import process_mask_native, scale_boxes

    rng = np.random.default_rng(4)
    for shape in [(500, 700), (333, 517), (1080, 1920), (97, 31)]:
        lb = Letterbox.fit(shape, (640, 640))
        protos = random_prototypes(rng, (160, 160))
        n = 25
        xy = rng.uniform(-20, 640, (n, 2))
        xyxy = np.concatenate([xy, xy + rng.uniform(0, 200, (n, 2))], axis=1).astype(np.float32)
        xyxy[0] = [300, 310, 300, 330]  # zero width: an empty mask, dropped
        coefs = rng.normal(0, 0.4, (n, 32)).astype(np.float32)
        coefs[1] = 0  # all-zero logits, never > 0: an empty mask, dropped
        det = Detections(xyxy, rng.random(n).astype(np.float32), rng.integers(0, 80, n), coefs)
        boxes, masks = to_source(det, protos, lb)

        ul_boxes = scale_boxes(lb.dst_shape, torch.from_numpy(xyxy.copy()), shape)
        ul_masks = process_mask_native(torch.from_numpy(protos), torch.from_numpy(coefs), ul_boxes, shape)
        keep = (ul_masks.amax((-2, -1)) > 0).numpy()
        assert not keep[0] and not keep[1] and keep.sum() > 5
        np.testing.assert_array_equal(boxes.xyxy, ul_boxes.numpy()[keep])
        np.testing.assert_array_equal(boxes.conf, det.conf[keep])
        np.testing.assert_array_equal(boxes.cls, det.cls[keep])
        np.testing.assert_array_equal(masks.data, ul_masks.numpy()[keep])


def test_to_input_frame_matches_ultralytics_default_masks():
    """to_input_frame against Ultralytics' retina_masks=False: process_mask(upsample=True) in the input frame,
    scale_boxes, then drop objects whose mask is empty; dynamic (non-square) inputs too."""
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import process_mask, scale_boxes

    rng = np.random.default_rng(5)
    for shape, imgsz, auto in [((500, 700), (640, 640), False), ((1080, 1920), (640, 640), False),
                               ((333, 517), (640, 640), True), ((97, 31), (320, 320), False)]:
        lb = Letterbox.fit(shape, imgsz, auto=auto)
        protos = random_prototypes(rng, (lb.dst_shape[0] // 4, lb.dst_shape[1] // 4))
        n = 25
        xy = rng.uniform(-20, max(lb.dst_shape), (n, 2))
        xyxy = np.concatenate([xy, xy + rng.uniform(0, 200, (n, 2))], axis=1).astype(np.float32)
        xyxy[0] = [100, 110, 100, 130]  # zero width: an empty mask, dropped
        coefs = rng.normal(0, 0.4, (n, 32)).astype(np.float32)
        det = Detections(xyxy, rng.random(n).astype(np.float32), rng.integers(0, 80, n), coefs)
        boxes, masks = to_input_frame(det, protos, lb)

        ul_masks = process_mask(torch.from_numpy(protos), torch.from_numpy(coefs), torch.from_numpy(xyxy.copy()),
                                lb.dst_shape, upsample=True)
        keep = (ul_masks.amax((-2, -1)) > 0).numpy()
        assert not keep[0] and keep.sum() > 5
        ul_boxes = scale_boxes(lb.dst_shape, torch.from_numpy(xyxy.copy()), shape).numpy()[keep]
        np.testing.assert_array_equal(boxes.xyxy, ul_boxes)
        assert masks.input_shape == lb.dst_shape and masks.orig_shape == shape
        np.testing.assert_array_equal(masks.data, ul_masks.numpy()[keep])


def source_windows_reference(dense: np.ndarray, crop: tuple[int, int, int, int], out_shape: tuple[int, int]):
    """Plain NumPy: every whole input-frame mask cropped to the image and resized bilinearly, > 0.5."""
    top, left, bottom, right = crop
    return np.stack([naive.resize_bilinear(m[top:bottom, left:right].astype(np.float32), out_shape) > 0.5
                     for m in dense]).astype(np.uint8) if len(dense) else np.zeros((0, *out_shape), np.uint8)


@pytest.mark.parametrize("src_shape, input_shape", [((480, 640), (640, 640)), ((1080, 1920), (640, 640)),
                                                    ((333, 517), (352, 544)), ((97, 31), (320, 320)),
                                                    ((640, 640), (640, 640)), ((2000, 30), (640, 640))])
def test_input_masks_to_source_matches_the_whole_frame_reference(src_shape, input_shape):
    rng = np.random.default_rng(src_shape[0] + input_shape[1])
    crop = content_box(input_shape, src_shape)
    h, w = input_shape
    bounds, dense = [], np.zeros((12, h, w), np.uint8)
    for k in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0, min(w, x0 + 200) + 1)), int(rng.integers(y0, min(h, y0 + 200) + 1))
        if k == 0:
            x0, y0, x1, y1 = 0, 0, w, h  # the whole frame, padding included
        dense[k, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        bounds.append((x0, y0, x1, y1))
    bounds = np.array(bounds, np.int64)
    flat = np.concatenate([dense[k, y0:y1, x0:x1].ravel() for k, (x0, y0, x1, y1) in enumerate(bounds)])
    out, offsets, windows = input_masks_to_source(flat, bounds, crop, src_shape)
    ours = np.zeros((12, *src_shape), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(windows):
        ours[k, y0:y1, x0:x1] = out[offsets[k] : offsets[k + 1]].reshape(y1 - y0, x1 - x0)
    expected = source_windows_reference(dense, crop, src_shape)
    np.testing.assert_array_equal(ours, expected)
    assert expected.any(axis=(1, 2)).sum() >= 2  # real masks (a 2000x30 image leaves most objects in the padding)


def test_input_masks_to_source_matches_ultralytics_scale_masks():
    torch = pytest.importorskip("torch")
    from ultralytics.utils.ops import scale_masks

    rng = np.random.default_rng(8)
    for src_shape in [(500, 700), (1080, 1920), (97, 31), (720, 1280)]:
        dense = (rng.random((4, 640, 640)) < 0.5).astype(np.uint8)
        bounds = np.array([[0, 0, 640, 640]] * 4, np.int64)
        out, offsets, windows = input_masks_to_source(dense.reshape(-1), bounds, content_box((640, 640), src_shape),
                                                      src_shape)
        assert (windows == [0, 0, src_shape[1], src_shape[0]]).all()
        expected = (scale_masks(torch.from_numpy(dense)[None].float(), src_shape)[0] > 0.5).numpy()
        np.testing.assert_array_equal(out.reshape(4, *src_shape), expected.astype(np.uint8))


def test_input_masks_to_source_empty_and_bad_arguments():
    out, offsets, windows = input_masks_to_source(np.zeros(0, np.uint8), np.zeros((0, 4), np.int64),
                                                  (80, 0, 560, 640), (480, 640))
    assert out.shape == (0,) and offsets.tolist() == [0] and windows.shape == (0, 4)
    # an empty crop, and one wholly in the letterbox padding, reach no source pixel
    out, _, windows = input_masks_to_source(np.ones(40, np.uint8), np.array([[5, 5, 5, 9], [0, 0, 10, 4]]),
                                            (80, 0, 560, 640), (480, 640))
    assert ((windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1]) == 0).all() and out.size == 0
    with pytest.raises(ValueError, match="mask bytes"):
        input_masks_to_source(np.ones(3, np.uint8), np.array([[0, 0, 2, 2]]), (0, 0, 4, 4), (4, 4))
    with pytest.raises(ValueError, match="content box"):
        input_masks_to_source(np.ones(4, np.uint8), np.array([[0, 0, 2, 2]]), (2, 0, 2, 4), (4, 4))

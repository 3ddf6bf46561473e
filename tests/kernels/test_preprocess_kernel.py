"""The letterbox + layout kernel against NumPy, and the Preprocessor against Ultralytics' LetterBox."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.inputs.letterbox import Letterbox
from edgeseg.inputs.preprocess import Preprocessor
from edgeseg.kernels.preprocess import hwc_bgr_to_chw_rgb
from tests.helpers import naive

IMGSZS = [(640, 640), (480, 640), (320, 192)]
# tiny, thin both ways, odd, exactly the target, larger than the target in either orientation
FIXED_SHAPES = [(1, 1), (1, 2), (2, 1), (1, 1000), (1000, 1), (1, 7), (3000, 2), (2, 3), (17, 17), (37, 53),
                (333, 517), (479, 641), (641, 639), (640, 640), (480, 640), (720, 1280), (1280, 720), (1080, 1920)]
RANDOM_SHAPES = [tuple(int(v) for v in s) for s in np.random.default_rng(7).integers(1, 1500, (12, 2))]


def random_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def ultralytics_input(image: np.ndarray, imgsz: tuple[int, int], auto: bool = False, half: bool = False) -> np.ndarray:
    """What Ultralytics' predictor feeds the network: LetterBox, BGR -> RGB, HWC -> CHW, then / 255."""
    torch = pytest.importorskip("torch")
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox(imgsz, auto=auto, stride=32)(image=image)
    tensor = torch.from_numpy(np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1)))
    tensor = tensor.half() if half else tensor.float()
    return (tensor / 255).numpy()


# --- the kernel against NumPy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "image_shape, out_shape, top, left, pad_value",
    [
        ((4, 5), (4, 5), 0, 0, 114),  # no padding at all
        ((1, 1), (1, 1), 0, 0, 114),
        ((1, 1), (7, 9), 3, 4, 114),
        ((3, 8), (8, 8), 2, 0, 114),  # padded top and bottom
        ((8, 3), (8, 8), 0, 3, 114),  # padded left and right
        ((5, 6), (9, 11), 0, 0, 0),  # image in the corner, pad 0
        ((5, 6), (9, 11), 4, 5, 255),  # image in the other corner, pad 255
        ((37, 53), (64, 64), 13, 5, 114),
        ((411, 640), (640, 640), 114, 0, 114),
    ],
)
def test_hwc_bgr_to_chw_rgb_matches_numpy(image_shape, out_shape, top, left, pad_value):
    image = random_image(image_shape, seed=sum(image_shape))
    image[0, 0] = (0, 128, 255)  # the extremes of the range, in every channel order
    out = np.full((3, *out_shape), np.nan, np.float32)  # NaN: every element must be written
    hwc_bgr_to_chw_rgb(image, out, top, left, pad_value)
    expected = naive.hwc_bgr_to_chw_rgb(image, out_shape, top, left, pad_value)
    np.testing.assert_array_equal(out, expected)  # bit-exact, NaN never equals
    assert out[:, top, left].tolist() == pytest.approx([1.0, 128 / 255, 0.0])  # BGR (0, 128, 255) -> RGB


def test_hwc_bgr_to_chw_rgb_divides_by_255_bit_exactly():
    # every uint8 value: x / 255 in float32, which differs from x * (1 / 255) in the last bit for some x
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = np.empty((3, 16, 16), np.float32)
    hwc_bgr_to_chw_rgb(image, out, 0, 0)
    expected = np.arange(256, dtype=np.float32).reshape(16, 16) / np.float32(255)
    for channel in out:
        np.testing.assert_array_equal(channel, expected)
    assert not np.array_equal(expected, np.arange(256, dtype=np.float32).reshape(16, 16) * np.float32(1 / 255))


def test_hwc_bgr_to_chw_rgb_writes_only_its_slot_of_a_batch():
    batch = np.full((3, 3, 10, 12), -1.0, np.float32)
    image = random_image((6, 12), seed=3)
    hwc_bgr_to_chw_rgb(image, batch[1], 2, 0)
    np.testing.assert_array_equal(batch[1], naive.hwc_bgr_to_chw_rgb(image, (10, 12), 2, 0))
    assert (batch[0] == -1).all() and (batch[2] == -1).all()


def test_hwc_bgr_to_chw_rgb_reads_non_contiguous_images():
    full = random_image((20, 30), seed=4)
    view = full[::2, 5:25]  # strided rows, offset columns
    out = np.empty((3, 12, 20), np.float32)
    hwc_bgr_to_chw_rgb(view, out, 1, 0)
    np.testing.assert_array_equal(out, naive.hwc_bgr_to_chw_rgb(np.ascontiguousarray(view), (12, 20), 1, 0))


@pytest.mark.parametrize(
    "image, out, top, left",
    [
        (np.zeros((4, 4, 3), np.float32), np.empty((3, 4, 4), np.float32), 0, 0),  # float image
        (np.zeros((4, 4), np.uint8), np.empty((3, 4, 4), np.float32), 0, 0),  # grayscale
        (np.zeros((4, 4, 4), np.uint8), np.empty((3, 4, 4), np.float32), 0, 0),  # BGRA
        (np.zeros((4, 4, 3), np.uint8), np.empty((3, 4, 4), np.float64), 0, 0),  # float64 out
        (np.zeros((4, 4, 3), np.uint8), np.empty((4, 4, 3), np.float32), 0, 0),  # HWC out
        (np.zeros((4, 4, 3), np.uint8), np.empty((3, 4, 8), np.float32)[:, :, ::2], 0, 0),  # non-contiguous out
        (np.zeros((4, 4, 3), np.uint8), np.empty((3, 4, 4), np.float32), 1, 0),  # runs off the bottom
        (np.zeros((4, 4, 3), np.uint8), np.empty((3, 4, 4), np.float32), 0, 1),  # runs off the right
        (np.zeros((4, 4, 3), np.uint8), np.empty((3, 6, 6), np.float32), -1, 0),  # negative offset
    ],
)
def test_hwc_bgr_to_chw_rgb_rejects_bad_arguments(image, out, top, left):
    with pytest.raises(ValueError, match="must be|does not fit"):
        hwc_bgr_to_chw_rgb(image, out, top, left)


# --- the Preprocessor against Ultralytics ----------------------------------------------------------------------------

@pytest.mark.parametrize("imgsz", IMGSZS)
def test_preprocessor_matches_ultralytics_letterbox(imgsz):
    pre = Preprocessor(imgsz, np.float32)
    for k, shape in enumerate(FIXED_SHAPES + RANDOM_SHAPES):
        image = random_image(shape, seed=k)
        batch, boxes = pre([image])
        expected = ultralytics_input(image, imgsz)
        assert batch.dtype == np.float32 and batch.shape == (1, *expected.shape), shape
        np.testing.assert_array_equal(batch[0], expected, err_msg=f"image {shape} into {imgsz}")
        assert boxes[0].src_shape == shape and boxes[0].dst_shape == imgsz


@pytest.mark.parametrize("imgsz", IMGSZS)
def test_preprocessor_float16_matches_ultralytics_half(imgsz):
    # Ultralytics with half=True: uint8 -> float16, then / 255 (PyTorch computes in float32, rounds once to float16)
    pre = Preprocessor(imgsz, np.float16)
    for k, shape in enumerate(FIXED_SHAPES[::2] + RANDOM_SHAPES[:4]):
        image = random_image(shape, seed=100 + k)
        batch, _ = pre([image])
        expected = ultralytics_input(image, imgsz, half=True)
        assert batch.dtype == np.float16
        np.testing.assert_array_equal(batch[0], expected, err_msg=f"image {shape} into {imgsz}")


@pytest.mark.parametrize("imgsz", IMGSZS)
def test_preprocessor_dynamic_matches_ultralytics_minimum_rectangle(imgsz):
    pre = Preprocessor(imgsz, np.float32, stride=32, dynamic=True)
    for k, shape in enumerate(FIXED_SHAPES + RANDOM_SHAPES[:6]):
        image = random_image(shape, seed=200 + k)
        batch, boxes = pre([image])
        expected = ultralytics_input(image, imgsz, auto=True)
        assert batch.shape == (1, *expected.shape), shape
        assert batch.shape[2] % 32 == 0 and batch.shape[3] % 32 == 0  # every imgsz here is a multiple of 32
        np.testing.assert_array_equal(batch[0], expected, err_msg=f"image {shape} into {imgsz}")
        assert boxes[0].dst_shape == expected.shape[1:]


def test_letterbox_fit_matches_ultralytics_params():
    from ultralytics.data.augment import LetterBox

    for imgsz in IMGSZS:
        for auto in (False, True):
            for shape in FIXED_SHAPES + RANDOM_SHAPES:
                params = LetterBox(imgsz, auto=auto, stride=32).get_params({"img": np.empty((*shape, 3), np.uint8)})
                lb = Letterbox.fit(shape, imgsz, auto=auto, stride=32)
                assert lb.resized == params["new_unpad"][::-1]
                assert (lb.top, lb.left) == (params["top"], params["left"])
                assert lb.dst_shape == (lb.resized[0] + params["top"] + params["bottom"],
                                        lb.resized[1] + params["left"] + params["right"])


def test_preprocessor_batch_of_mixed_shapes():
    # dynamic, but shapes differ: Ultralytics then pads every image to the full imgsz (no minimum rectangle)
    imgsz = (320, 320)
    images = [random_image(s, seed=k) for k, s in enumerate([(100, 200), (300, 40), (1, 1)])]
    for dynamic in (False, True):
        batch, boxes = Preprocessor(imgsz, np.float32, dynamic=dynamic)(images)
        assert batch.shape == (3, 3, *imgsz)
        for k, image in enumerate(images):
            np.testing.assert_array_equal(batch[k], ultralytics_input(image, imgsz))
            assert boxes[k].src_shape == image.shape[:2]


def test_preprocessor_dynamic_batch_of_one_shape_uses_minimum_rectangle():
    imgsz = (640, 640)
    images = [random_image((333, 517), seed=k) for k in range(2)]
    batch, boxes = Preprocessor(imgsz, np.float32, dynamic=True)(images)
    expected = [ultralytics_input(image, imgsz, auto=True) for image in images]
    assert batch.shape == (2, *expected[0].shape) and batch.shape[2:] == (416, 640)
    for k in range(2):
        np.testing.assert_array_equal(batch[k], expected[k])


def test_preprocessor_fixed_batch_pads_with_zeros_and_reuses_its_buffer():
    imgsz = (96, 128)
    pre = Preprocessor(imgsz, np.float32, batch=4)
    first = [random_image((50, 60), seed=k) for k in range(3)]
    batch, _ = pre(first)
    assert batch.shape == (4, 3, *imgsz)
    assert (batch[3] == 0).all()
    second = [random_image((200, 30), seed=10 + k) for k in range(2)]
    again, boxes = pre(second)
    assert again is batch  # the documented buffer reuse
    assert len(boxes) == 2 and again.shape == (4, 3, *imgsz)
    for k in range(2):
        np.testing.assert_array_equal(again[k], ultralytics_input(second[k], imgsz))
    assert (again[2:] == 0).all()  # the third image of the previous call is gone


def test_preprocessor_float16_buffer_follows_the_batch_shape():
    pre = Preprocessor((64, 64), np.float16, dynamic=True)
    a, _ = pre([random_image((64, 20))])
    b, _ = pre([random_image((20, 64)), random_image((20, 64), seed=1)])
    assert a.shape == (1, 3, 64, 32) and b.shape == (2, 3, 32, 64) and b.dtype == np.float16
    np.testing.assert_array_equal(b[1], ultralytics_input(random_image((20, 64), seed=1), (64, 64), auto=True,
                                                          half=True))

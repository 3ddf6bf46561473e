"""fill_polygons against cv2.fillPoly / cv2.drawContours (integer vertices) and the NumPy references in naive.py
(float vertices, the nonzero rule)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edgeseg.kernels.raster import COORD_LIMIT, fill_polygons
from tests.helpers import naive

# --- random integer polygons: each maker takes (rng, lo, hi) and returns (K, 2) int64 vertices, mostly in [lo, hi) ----


def convex(rng, lo, hi):
    points = rng.integers(lo, hi, (rng.integers(3, 12), 2)).astype(np.int32)
    return cv2.convexHull(points)[:, 0].astype(np.int64)


def star(rng, lo, hi):
    """Sorted angles, random radii: concave, simple before rounding (rounding can make thin spikes touch)."""
    n = rng.integers(3, 40)
    centre, radius = rng.uniform(lo, hi, 2), rng.uniform(1, max(hi - lo, 2) / 2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.2, 1, n)
    return np.round(centre + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.int64)


def scribble(rng, lo, hi):
    """Random vertices in random order: self-intersecting."""
    return rng.integers(lo, hi, (rng.integers(3, 15), 2))


def pinched(rng, lo, hi):
    """A star that passes through one of its vertices twice: self-touching."""
    p = star(rng, lo, hi)
    i = rng.integers(len(p))
    return np.insert(p, (i + rng.integers(2, len(p) + 1)) % (len(p) + 1), p[i], axis=0)


def repeated(rng, lo, hi):
    p = star(rng, lo, hi)
    return np.repeat(p, rng.integers(1, 4, len(p)), axis=0)


def collinear(rng, lo, hi):
    """Every lattice point along each edge, and a spike that runs out and back along one edge."""
    p = scribble(rng, lo, hi) if rng.random() < 0.5 else convex(rng, lo, hi)
    out = []
    for a, b in zip(p, np.roll(p, -1, axis=0), strict=True):
        steps = math.gcd(*(int(v) for v in np.abs(b - a))) or 1
        out.extend(a + (b - a) // steps * np.arange(steps)[:, None])
    out = np.array(out)
    i = rng.integers(len(out))
    return np.insert(out, i, [out[i], out[i - 1]], axis=0)


def rectilinear(rng, lo, hi):
    """Alternate horizontal and vertical moves: axis-aligned edges only, often self-intersecting."""
    n = rng.integers(2, 8)
    xs, ys = rng.integers(lo, hi, n), rng.integers(lo, hi, n)
    return np.stack([np.repeat(xs, 2), np.roll(np.repeat(ys, 2), 1)], 1)


def tiny(rng, lo, hi):
    """One to three vertices close together, sometimes equal."""
    start = rng.integers(lo, hi, 2)
    return start + rng.integers(-2, 3, (rng.integers(1, 4), 2))


KINDS = [convex, star, scribble, pinched, repeated, collinear, rectilinear, tiny]


def random_polygons(rng, kind, lo, hi):
    """One to three polygons of one kind, sometimes with one of another kind; overlapping ones are common."""
    polygons = [kind(rng, lo, hi) for _ in range(rng.integers(1, 4))]
    if rng.random() < 0.3:
        polygons.append(KINDS[rng.integers(len(KINDS))](rng, lo, hi))
    return polygons


def cv2_fill(polygons, shape, value=1):
    img = np.zeros(shape, np.uint8)
    cv2.fillPoly(img, [p.astype(np.int32) for p in polygons], value)
    return img


def cv2_fill_unclipped(polygons, shape):
    """cv2.fillPoly on a canvas that holds every vertex, cropped to shape: OpenCV without its border clipping."""
    vertices = np.concatenate(polygons)
    pad = int(max(0, -vertices.min(), (vertices - np.array(shape[::-1])).max())) + 1
    canvas = cv2_fill([p + pad for p in polygons], (shape[0] + 2 * pad, shape[1] + 2 * pad))
    return canvas[pad : pad + shape[0], pad : pad + shape[1]]


def cv2_outline(polygons, shape, offset=(0, 0)):
    """The 8-connected outlines cv2.polylines draws, without its border clipping."""
    shifted = [p - np.array(offset) for p in polygons]
    vertices = np.concatenate(shifted)
    pad = int(max(0, -vertices.min(), (vertices - np.array(shape[::-1])).max())) + 1
    canvas = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad), np.uint8)
    cv2.polylines(canvas, [(p + pad).astype(np.int32) for p in shifted], True, 1)
    return canvas[pad : pad + shape[0], pad : pad + shape[1]]


# --- integer vertices against OpenCV ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__ for k in KINDS])
def test_integer_polygons_inside_the_image_match_cv2(kind):
    rng = np.random.default_rng(len(kind.__name__))
    for _ in range(300):
        shape = tuple(int(v) for v in rng.integers(1, 48, 2))
        corner = np.array(shape[::-1]) - 1
        polygons = [np.clip(p, 0, corner) for p in random_polygons(rng, kind, 0, max(shape))]
        expected = cv2_fill(polygons, shape)
        ours = fill_polygons(polygons, shape)
        np.testing.assert_array_equal(ours, expected, err_msg=repr(polygons))
        contours = np.zeros(shape, np.uint8)
        cv2.drawContours(contours, [p.astype(np.int32) for p in polygons], -1, 1, cv2.FILLED)
        np.testing.assert_array_equal(ours, contours)
        # OpenCV clips nothing here, so giving it the frame changes nothing
        np.testing.assert_array_equal(fill_polygons(polygons, shape, frame_shape=shape), expected)


@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__ for k in KINDS])
def test_integer_polygons_across_the_border_match_cv2(kind):
    rng = np.random.default_rng(100 + len(kind.__name__))
    for i in range(300):
        shape = tuple(int(v) for v in rng.integers(1, 48, 2))
        reach = [max(shape), 10 * max(shape), 5000][i % 3]  # partly outside, mostly outside, far outside
        polygons = random_polygons(rng, kind, -reach, max(shape) + reach)
        if i % 10 == 0:
            polygons.append(rng.integers(-40, -1, (4, 2)))  # wholly outside
        # with the frame: OpenCV's own clipping, pixel for pixel
        framed = fill_polygons(polygons, shape, frame_shape=shape)
        np.testing.assert_array_equal(framed, cv2_fill(polygons, shape), err_msg=repr(polygons))
        contours = np.zeros(shape, np.uint8)
        cv2.drawContours(contours, [p.astype(np.int32) for p in polygons], -1, 1, cv2.FILLED)
        np.testing.assert_array_equal(framed, contours)
        if reach < 1000:  # without: OpenCV on an image big enough that nothing is clipped (but not 10000 x 10000)
            np.testing.assert_array_equal(fill_polygons(polygons, shape), cv2_fill_unclipped(polygons, shape),
                                          err_msg=repr(polygons))


def test_frame_shape_reproduces_the_image_size_dependence_of_cv2():
    # OpenCV clips an edge that leaves the image before drawing it: its slope is then taken from the rounded clipped
    # ends, so the pixels near the border depend on how big the image is, not only on the polygon
    polygon = np.array([[-10, 5], [30, -7], [35, 30]])
    small = cv2_fill([polygon], (20, 20))
    unclipped = cv2_fill_unclipped([polygon], (20, 20))
    assert (small != unclipped).sum() == 13
    np.testing.assert_array_equal(fill_polygons(polygon, (20, 20), frame_shape=(20, 20)), small)
    np.testing.assert_array_equal(fill_polygons(polygon, (20, 20)), unclipped)


def test_contours_of_random_blobs_match_draw_contours():
    rng = np.random.default_rng(7)
    for _i in range(40):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        noise = cv2.GaussianBlur(rng.random(shape), (0, 0), rng.uniform(1, 4))
        mask = (noise > rng.uniform(0.45, 0.55)).astype(np.uint8)
        for method in (cv2.CHAIN_APPROX_NONE, cv2.CHAIN_APPROX_SIMPLE, cv2.CHAIN_APPROX_TC89_L1):
            external, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, method)
            expected = np.zeros(shape, np.uint8)
            cv2.drawContours(expected, external, -1, 1, cv2.FILLED)
            np.testing.assert_array_equal(fill_polygons(external, shape), expected)
            one = np.zeros(shape, np.uint8)
            cv2.drawContours(one, external, 0, 1, cv2.FILLED)
            np.testing.assert_array_equal(fill_polygons(external[0], shape), one)
            # outer and hole contours in one even-odd fill: holes cut out again
            every, _ = cv2.findContours(mask, cv2.RETR_CCOMP, method)
            expected = np.zeros(shape, np.uint8)
            cv2.drawContours(expected, every, -1, 1, cv2.FILLED)
            np.testing.assert_array_equal(fill_polygons(every, shape), expected)
            if method != cv2.CHAIN_APPROX_TC89_L1:  # the lossless chains give the mask back
                np.testing.assert_array_equal(expected, mask)


def test_long_polygons_in_a_4k_frame_match_cv2():
    rng = np.random.default_rng(8)
    shape = (2160, 3840)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 5000))
    radii = rng.uniform(300, 1000, 5000)
    star_5000 = np.round([1900, 1080] + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.int64)
    blob = rng.integers(-200, 4000, (300, 2))
    polygons = [star_5000, blob]
    expected = cv2_fill(polygons, shape, value=255)
    np.testing.assert_array_equal(fill_polygons(polygons, shape, value=255, frame_shape=shape), expected)
    vertices_inside = cv2_fill([star_5000], shape)
    np.testing.assert_array_equal(fill_polygons(star_5000, shape), vertices_inside)


# --- the nonzero rule -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [scribble, pinched, rectilinear, collinear], ids=lambda k: k.__name__)
def test_integer_nonzero_is_opencv_outline_plus_nonzero_interior(kind):
    rng = np.random.default_rng(200 + len(kind.__name__))
    for _i in range(150):
        shape = tuple(int(v) for v in rng.integers(1, 40, 2))
        polygons = random_polygons(rng, kind, -10, max(shape) + 10)
        outline = cv2_outline(polygons, shape)
        for rule in ("evenodd", "nonzero"):
            expected = naive.fill_polygons_fixed_point(polygons, shape, rule) | outline
            np.testing.assert_array_equal(fill_polygons(polygons, shape, rule), expected, err_msg=repr(polygons))


def test_nonzero_equals_evenodd_for_simple_polygons():
    rng = np.random.default_rng(9)
    for _ in range(300):
        shape = tuple(int(v) for v in rng.integers(1, 48, 2))
        polygon = convex(rng, -5, max(shape) + 5)
        if rng.random() < 0.5:
            polygon = polygon[::-1]  # the other orientation: winding -1 inside
        expected = cv2_fill_unclipped([polygon], shape)
        np.testing.assert_array_equal(fill_polygons(polygon, shape, "nonzero"), expected)
        centres = polygon * rng.uniform(0.5, 1.5) + rng.uniform(-1, 1, 2)  # still convex
        np.testing.assert_array_equal(fill_polygons(centres, shape, "nonzero"), fill_polygons(centres, shape))


def test_nonzero_fills_what_evenodd_cuts_out():
    square = np.array([[2, 2], [12, 2], [12, 12], [2, 12]])
    again = square + 4  # same orientation: the overlap has winding 2
    evenodd, nonzero = fill_polygons([square, again], (20, 20)), fill_polygons([square, again], (20, 20), "nonzero")
    assert evenodd[9, 8:12].tolist() == [0, 0, 0, 0] and nonzero[9, 8:12].tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(nonzero, cv2_fill([square], (20, 20)) | cv2_fill([again], (20, 20)))


# --- float vertices: centre sampling ----------------------------------------------------------------------------------

def random_float_polygons(rng, size):
    """Float polygons, often on a quarter grid or whole numbers, so that edges and vertices hit pixel centres."""
    polygons = []
    for _ in range(rng.integers(1, 4)):
        kind = KINDS[rng.integers(len(KINDS))]
        p = kind(rng, -size // 4, size + size // 4) + rng.uniform(-1, 1, (1, 2)) * rng.uniform(0, 1, (1, 1))
        p = p + rng.uniform(-0.7, 0.7, p.shape)
        grid = rng.choice([0, 1, 2, 4])  # 0: leave the noise; otherwise snap to 1 / grid
        polygons.append(np.round(p * grid) / grid if grid else p)
    return polygons


@pytest.mark.parametrize("rule", ["evenodd", "nonzero"])
def test_float_polygons_match_the_centre_sampling_reference(rule):
    rng = np.random.default_rng(10 + (rule == "nonzero"))
    for i in range(600):
        shape = tuple(int(v) for v in rng.integers(1, 40, 2))
        polygons = random_float_polygons(rng, max(shape))
        if i % 3 == 0:
            polygons = [p.astype(np.float32) for p in polygons]
        expected = naive.fill_polygons_centres(polygons, shape, rule)
        np.testing.assert_array_equal(fill_polygons(polygons, shape, rule), expected, err_msg=repr(polygons))


def test_float_polygons_sharing_edges_claim_each_pixel_once():
    # a jittered grid cut into triangles: every centre inside the outer boundary is claimed by exactly one triangle
    rng = np.random.default_rng(11)
    for _ in range(20):
        rows, cols = rng.integers(2, 7, 2)
        grid = np.stack(np.meshgrid(np.arange(cols + 1) * 7.0, np.arange(rows + 1) * 6.0), -1) + 3
        grid[1:-1, 1:-1] += rng.uniform(-2, 2, grid[1:-1, 1:-1].shape)
        if rng.random() < 0.5:  # vertices and edges through pixel centres
            steps = rng.choice([1, 2, 4])
            grid = np.round(grid * steps) / steps
        shape = (int(grid[..., 1].max()) + 4, int(grid[..., 0].max()) + 4)
        claims = np.zeros(shape, np.int64)
        for r in range(rows):
            for c in range(cols):
                a, b, d, e = grid[r, c], grid[r, c + 1], grid[r + 1, c + 1], grid[r + 1, c]
                for triangle in ([a, b, d], [a, d, e]) if (r + c) % 2 else ([a, b, e], [b, d, e]):
                    claims += fill_polygons(np.array(triangle), shape)
        boundary = np.concatenate([grid[0, :-1], grid[:-1, -1], grid[-1, :0:-1], grid[:0:-1, 0]])
        np.testing.assert_array_equal(claims, fill_polygons(boundary, shape))


def test_whole_number_floats_follow_the_centre_rule_not_opencv():
    square = np.array([[2, 2], [6, 2], [6, 5], [2, 5]])
    ours = fill_polygons(square.astype(np.float64), (8, 8))
    assert ours.sum() == 4 * 3 and ours[2:5, 2:6].all()  # top and left edges in, right and bottom edges out
    assert fill_polygons(square, (8, 8)).sum() == 5 * 4  # OpenCV: the outline too


# --- boxes, offsets, the output buffer --------------------------------------------------------------------------------

def random_box(rng, shape):
    """(x0, y0, h, w): a box mostly inside the frame, sometimes across its border or outside it."""
    h, w = shape
    x0, y0 = int(rng.integers(-w // 3, w)), int(rng.integers(-h // 3, h))
    return x0, y0, int(rng.integers(0, h // 2 + 2)), int(rng.integers(0, w // 2 + 2))


@pytest.mark.parametrize("rule", ["evenodd", "nonzero"])
@pytest.mark.parametrize("vertices", ["integer", "float"])
def test_a_box_with_offset_is_the_crop_of_the_full_frame(rule, vertices):
    rng = np.random.default_rng(12 + (rule == "nonzero") + 2 * (vertices == "float"))
    pad = 40
    for _ in range(150):
        shape = (int(rng.integers(10, 50)), int(rng.integers(10, 50)))
        if vertices == "integer":
            polygons = random_polygons(rng, KINDS[rng.integers(len(KINDS))], -20, max(shape) + 20)
        else:
            polygons = random_float_polygons(rng, max(shape))
        # the frame with a margin, so that boxes across the border have something to be the crop of
        padded = fill_polygons(polygons, (shape[0] + 2 * pad, shape[1] + 2 * pad), rule, offset=(-pad, -pad))
        framed = np.zeros_like(padded)
        framed[pad:-pad, pad:-pad] = fill_polygons(polygons, shape, rule, frame_shape=shape)
        for _ in range(5):
            x0, y0, h, w = random_box(rng, shape)
            crop = np.s_[pad + y0 : pad + y0 + h, pad + x0 : pad + x0 + w]
            np.testing.assert_array_equal(fill_polygons(polygons, (h, w), rule, offset=(x0, y0)), padded[crop])
            np.testing.assert_array_equal(fill_polygons(polygons, (h, w), rule, offset=(x0, y0), frame_shape=shape),
                                          framed[crop])


def test_out_is_drawn_over_not_cleared():
    out = np.full((10, 12), 7, np.uint8)
    triangle = np.array([[1, 1], [8, 1], [1, 8]])
    result = fill_polygons(triangle, (10, 12), out=out, value=200)
    assert result is out
    expected = np.where(cv2_fill([triangle], (10, 12)) == 1, 200, 7)
    np.testing.assert_array_equal(out, expected)
    fill_polygons(triangle + 2, (10, 12), out=out, value=0)  # value 0 erases
    np.testing.assert_array_equal(out == 0, cv2_fill([triangle + 2], (10, 12)) == 1)


def test_empty_inputs_give_zeros():
    assert not fill_polygons([], (5, 6)).any() and fill_polygons([], (5, 6)).shape == (5, 6)
    assert not fill_polygons([np.empty((0, 2), np.int32), []], (5, 6)).any()
    assert fill_polygons(np.array([[0, 0], [3, 0], [0, 3]]), (0, 6)).shape == (0, 6)
    far = np.array([[0, 0], [3, 0], [0, 3]])
    assert not fill_polygons(far, (4, 4), offset=(100, 100)).any()  # the box misses the polygon
    assert not fill_polygons(far, (4, 4), offset=(-10, 0), frame_shape=(4, 4)).any()  # the box misses the frame


def test_vertex_layouts_and_dtypes_agree():
    polygon = np.array([[1, 1], [9, 2], [5, 8], [2, 6]])
    expected = cv2_fill([polygon], (10, 10))
    for variant in (polygon.astype(np.int32), polygon.astype(np.uint8), polygon.astype(np.int16)[:, None, :],
                    polygon.tolist(), tuple(map(tuple, polygon.tolist()))):
        np.testing.assert_array_equal(fill_polygons([variant], (10, 10)), expected)
    float64 = fill_polygons(polygon + 0.3, (10, 10))
    np.testing.assert_array_equal(fill_polygons((polygon + 0.3).astype(np.float32), (10, 10)),
                                  fill_polygons((polygon + 0.3).astype(np.float32).astype(np.float64), (10, 10)))
    assert float64.any()


@pytest.mark.parametrize("args, kwargs, message", [
    ([np.zeros((4, 3))], {}, r"polygon 0 must be a \(K, 2\) array .* got shape \(4, 3\)"),
    ([[0, 0], [1, 1], [2, 0]], {}, r"polygon 0 must be a \(K, 2\) array .* got shape \(2,\)"),
    (np.zeros((2, 4, 2)), {}, r"polygon 0 must be a \(K, 2\) array .* got shape \(2, 4, 2\)"),
    (np.array([[0, 0], [1, 1]], bool), {}, "integer or floating vertices, got dtype bool"),
    ([np.zeros((3, 2), np.int32), np.zeros((3, 2))], {}, "mix integer and floating"),
    (np.array([[0, 0], [np.nan, 1], [2, 0]]), {}, "finite"),
    (np.array([[0, 0], [COORD_LIMIT + 1, 1], [2, 0]]), {}, "within"),
    (42, {}, "sequence"),
    (np.zeros((3, 2), np.int32), {"rule": "winding"}, "rule must be one of"),
    (np.zeros((3, 2), np.int32), {"shape": (4, -1)}, r"shape must lie in \[0, "),
    (np.zeros((3, 2), np.int32), {"shape": (4, 4, 1)}, "shape must be two integers"),
    (np.zeros((3, 2), np.int32), {"shape": (4.0, 4.0)}, "shape must be two integers"),
    (np.zeros((3, 2), np.int32), {"offset": (0.5, 0)}, "offset must be two integers"),
    (np.zeros((3, 2), np.int32), {"out": np.zeros((4, 5), np.uint8)}, r"a \(4, 4\) uint8 array, got \(4, 5\)"),
    (np.zeros((3, 2), np.int32), {"out": np.zeros((4, 4), np.int32)}, "got \\(4, 4\\) int32"),
    (np.zeros((3, 2), np.int32), {"out": np.zeros((4, 8), np.uint8)[:, ::2]}, "C-contiguous"),
    (np.zeros((3, 2), np.int32), {"value": 256}, r"value must be an integer in \[0, 255\]"),
    (np.zeros((3, 2), np.int32), {"value": 1.5}, "value must be an integer"),
    (np.zeros((3, 2), np.int32), {"frame_shape": (4,)}, "frame_shape must be two integers"),
])
def test_bad_arguments_raise_value_error(args, kwargs, message):
    kwargs = {"shape": (4, 4), **kwargs}
    with pytest.raises(ValueError, match=message):
        fill_polygons(args, **kwargs)

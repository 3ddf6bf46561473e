"""Scanline polygon filling: one object's polygons into a (H, W) uint8 mask.

The vertices' dtype picks how pixels are sampled:

* Integer vertices follow cv2.fillPoly (lineType 8, shift 0) to the pixel. Every edge, horizontal and zero-length ones
  included, is drawn as OpenCV's 8-connected line. A non-horizontal edge from its top (xt, yt) to its bottom (xb, yb)
  crosses the rows yt <= y < yb at X(y) = xt * 2**16 + (y - yt) * trunc((xb - xt) * 2**16 / (yb - yt)), in OpenCV's
  16.16 fixed point with its truncated slope. In each row the crossings of all polygons are sorted and pixel x is
  filled when x * 2**16 lies in a closed interval between two crossings where the rule holds.
* Float vertices are sampled at pixel centres: pixel (x, y), whose centre is the point (x, y) (OpenCV's convention,
  where contour vertices are pixel indices), is filled when that point is inside. Edges cross row y when
  y_top <= y < y_bottom, at x_top + (y - y_top) * slope in float64; the spans are half-open [left, right). So a centre
  on an edge belongs to the polygon on its right, or below it for a horizontal edge (the top-left rule), and
  polygons that share an edge never both claim a pixel.

The fill rules: "evenodd" fills between the 1st and 2nd crossing, the 3rd and 4th, ...; "nonzero" where the winding
number (+1 for each edge going down, -1 going up) is not zero. For one simple polygon they agree.

The scan keeps an active edge list: edges sorted by first row join it when the scan reaches that row and leave at
their end row; each row computes the active edges' crossings, sorts them (insertion sort: the order barely changes
from one row to the next) and fills the spans. Rows and line pixels outside the output are never visited, so the
cost is O(output rows x active edges + edges + outline pixels in the output), however far the polygons reach.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .jit import jit, kernel

FIXED_SHIFT = 16  # OpenCV's XY_SHIFT: integer-vertex crossings are 16.16 fixed point
FIXED_ONE = 1 << FIXED_SHIFT
# |integer coordinate| bound (also for shape, offset and frame_shape): OpenCV's fixed-point extrapolation of a clipped
# edge multiplies two such spans by 2**16, which must stay inside int64
COORD_LIMIT = 1 << 22
RULES = ("evenodd", "nonzero")


# --- the scan, shared by both samplings -------------------------------------------------------------------------------

@jit
def _update_active(active, num_active, order, next_edge, first_row, end_row, y):
    """Drops the active edges that end at row y, adds those that start at or above it; returns (num_active, next_edge).

    The scan may start below the polygons' top, so an edge that starts above row y may have ended too: it is skipped.
    """
    kept = 0
    for k in range(num_active):
        edge = active[k]
        if end_row[edge] > y:
            active[kept] = edge
            kept += 1
    while next_edge < order.shape[0] and first_row[order[next_edge]] <= y:
        edge = order[next_edge]
        next_edge += 1
        if end_row[edge] > y:
            active[kept] = edge
            kept += 1
    return kept, next_edge


@jit
def _sort_crossings(crossings, active, count):
    """Insertion sort of the first `count` crossings, carrying their edges along (near-linear: rows change little)."""
    for i in range(1, count):
        x, edge = crossings[i], active[i]
        j = i - 1
        while j >= 0 and crossings[j] > x:
            crossings[j + 1] = crossings[j]
            active[j + 1] = active[j]
            j -= 1
        crossings[j + 1] = x
        active[j + 1] = edge


@jit
def _runs(active, count, winding, nonzero, runs):
    """Writes into `runs` the (start, stop) positions in the sorted crossings between which the rule fills; returns
    how many.

    A run of consecutive filled intervals is one span, so that zero-length intervals (crossings at the same x)
    inside it change nothing.
    """
    num_runs, inside, start = 0, 0, 0
    for k in range(count):
        after = inside + winding[active[k]] if nonzero else 1 - inside
        if inside == 0 and after != 0:
            start = k
        elif inside != 0 and after == 0:
            runs[2 * num_runs] = start
            runs[2 * num_runs + 1] = k
            num_runs += 1
        inside = after
    return num_runs


@jit
def _scan(edges, count, rounding, nonzero, origin, region, out, value):
    """Fills the rows of `region` in `out` from the first `count` edges of an edge table.

    edges (first_row, end_row, x_top, y_top, slope, winding): edge e crosses the rows first_row <= y < end_row at
    x_top + (y - y_top) * slope, in units of `unit` per pixel. rounding (unit, closing): the span from crossing
    `left` to crossing `right` holds the pixels p with left <= p * unit < right + closing, so (2**16, 1) gives
    OpenCV's closed spans in its fixed point and (1.0, 0.0) half-open spans in pixels.
    origin (x0, y0): out's top-left pixel in polygon coordinates; region (x_lo, y_lo, x_hi, y_hi): the half-open
    rectangle, in polygon coordinates, that may be written.
    """
    if count == 0:
        return
    first_row, end_row, x_top, y_top, slope, winding = edges
    unit, closing = rounding
    x_lo, y_lo, x_hi, y_hi = region
    order = np.argsort(first_row[:count])
    active, crossings = np.empty(count, np.int64), np.empty_like(x_top[:count])
    runs = np.empty(count + 1, np.int64)
    num_active, next_edge = 0, 0
    for y in range(max(y_lo, first_row[order[0]]), y_hi):
        num_active, next_edge = _update_active(active, num_active, order, next_edge, first_row, end_row, y)
        if num_active == 0 and next_edge == count:
            break
        for k in range(num_active):
            edge = active[k]
            crossings[k] = x_top[edge] + (y - y_top[edge]) * slope[edge]
        _sort_crossings(crossings, active, num_active)
        for r in range(_runs(active, num_active, winding, nonzero, runs)):
            # the first pixel of the span and the first past it, in float64: exact for every fixed-point crossing
            # below 2**53, and larger ones (over 2**37 pixels) are clamped away anyway
            left = np.ceil(crossings[runs[2 * r]] / unit)
            right = np.ceil((crossings[runs[2 * r + 1]] + closing) / unit)
            # clamped before converting: float crossings may lie beyond int64
            left, right = min(max(left, x_lo), x_hi), min(max(right, x_lo), x_hi)
            if left < right:
                out[y - origin[1], int(left) - origin[0] : int(right) - origin[0]] = value


# --- integer vertices: OpenCV's fillPoly ------------------------------------------------------------------------------

@jit
def _outcode(x, y, right, bottom):
    """Cohen-Sutherland code as OpenCV builds it: 1 left, 2 right, 4 above, 8 below the image."""
    return (x < 0) * 1 + (x > right) * 2 + (y < 0) * 4 + (y > bottom) * 8


@jit
def _clip_to_frame(x1, y1, x2, y2, width, height):
    """cv2.clipLine on a width x height image, its double-precision rounding included; returns (x1, y1, x2, y2, hit).

    As in OpenCV, a segment that misses the image may come back half-clipped: fillPoly uses those ends all the same.
    """
    right, bottom = width - 1, height - 1
    c1, c2 = _outcode(x1, y1, right, bottom), _outcode(x2, y2, right, bottom)
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:  # above or below: slide along the segment to the top or bottom row
            row = 0 if c1 < 8 else bottom
            x1 += int(float(row - y1) * float(x2 - x1) / float(y2 - y1))
            y1 = row
            c1 = (x1 < 0) * 1 + (x1 > right) * 2
        if c2 & 12:
            row = 0 if c2 < 8 else bottom
            x2 += int(float(row - y2) * float(x2 - x1) / float(y2 - y1))
            y2 = row
            c2 = (x2 < 0) * 1 + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:  # left or right: slide to the first or last column
                col = 0 if c1 == 1 else right
                y1 += int(float(col - x1) * float(y2 - y1) / float(x2 - x1))
                x1 = col
                c1 = 0
            if c2:
                col = 0 if c2 == 1 else right
                y2 += int(float(col - x2) * float(y2 - y1) / float(x2 - x1))
                x2 = col
                c2 = 0
    return x1, y1, x2, y2, (c1 | c2) == 0


@jit
def _draw_line(xa, ya, xb, yb, origin, region, out, value):
    """OpenCV's 8-connected line between integer points (both ends included); pixels outside `region` are skipped.

    OpenCV walks from the left end, one pixel along the major axis per step, and steps along the minor axis when its
    error term is negative. In closed form the minor offset after j steps is floor((2 minor j + major - 1) / (2 major))
    and the error term major - 2 minor (j + 1) + 2 major offset, so the walk can start at the region's edge.
    """
    if xb < xa:
        xa, ya, xb, yb = xb, yb, xa, ya
    run, rise = xb - xa, abs(yb - ya)
    step_y = 1 if yb >= ya else -1
    steep = rise > run
    major, minor = (rise, run) if steep else (run, rise)
    x_lo, y_lo, x_hi, y_hi = region
    if steep:
        first, last = (y_lo - ya, y_hi - 1 - ya) if step_y > 0 else (ya - y_hi + 1, ya - y_lo)
    else:
        first, last = x_lo - xa, x_hi - 1 - xa
    first = max(first, 0)
    shift = (2 * minor * first + major - 1) // (2 * major) if major > 0 else 0
    error = major - 2 * minor * (first + 1) + 2 * major * shift
    for j in range(first, min(last, major) + 1):
        x, y = (xa + shift, ya + step_y * j) if steep else (xa + j, ya + step_y * shift)
        if x_lo <= x < x_hi and y_lo <= y < y_hi:
            out[y - origin[1], x - origin[0]] = value
        if error < 0:
            shift += 1
            error += 2 * major
        error -= 2 * minor


@jit
def _trunc_div(num, den):
    """num / den rounded towards zero, as C's integer division."""
    quotient = abs(num) // abs(den)
    return quotient if (num >= 0) == (den > 0) else -quotient


@jit
def _outlines_and_edges(xs, ys, starts, origin, region, frame, out, value):
    """Draws every edge's line and returns the fixed-point edge table (first_row, end_row, x_top, dx, winding, count).

    frame (width, height): the image cv2.fillPoly would draw into; an edge with an end outside it is clipped as
    OpenCV does, which changes its line and its slope. (0, 0): no frame, nothing is clipped.
    """
    size = xs.shape[0]
    first_row, end_row = np.empty(size, np.int64), np.empty(size, np.int64)
    x_top, dx, winding = np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64)
    width, height = frame
    count = 0
    for p in range(starts.shape[0] - 1):
        begin, end = starts[p], starts[p + 1]
        for i in range(begin, end):
            k = i - 1 if i > begin else end - 1  # the edge from the previous vertex; the first closes the polygon
            xa, ya, xb, yb = xs[k], ys[k], xs[i], ys[i]
            ca, cb = xa, xb  # the x of the points OpenCV takes the slope from ...
            ra, rb = ya, yb  # ... and their rows
            visible = True
            if width > 0 and not (0 <= xa < width and 0 <= xb < width and 0 <= ya < height and 0 <= yb < height):
                ca, clip_ya, cb, clip_yb, visible = _clip_to_frame(xa, ya, xb, yb, width, height)
                if clip_ya != clip_yb:  # a clip to a horizontal piece keeps the original rows, but not the x
                    ra, rb = clip_ya, clip_yb
                if visible:
                    _draw_line(ca, clip_ya, cb, clip_yb, origin, region, out, value)
            else:
                _draw_line(xa, ya, xb, yb, origin, region, out, value)
            if ya == yb or max(ya, yb) <= region[1] or min(ya, yb) >= region[3]:
                continue  # horizontal, or no row of it in the output
            slope = _trunc_div((cb - ca) << FIXED_SHIFT, rb - ra)
            if ya < yb:
                first_row[count], end_row[count], winding[count] = ya, yb, 1
                x_top[count] = (ca << FIXED_SHIFT) + (ya - ra) * slope
            else:
                first_row[count], end_row[count], winding[count] = yb, ya, -1
                x_top[count] = (cb << FIXED_SHIFT) + (yb - rb) * slope
            dx[count] = slope
            count += 1
    return first_row, end_row, x_top, dx, winding, count


@kernel("void(int64[::1], int64[::1], int64[::1], UniTuple(int64, 2), UniTuple(int64, 4), UniTuple(int64, 2), boolean, "
        "uint8[:, ::1], int64)")
def _fill_fixed_point(xs, ys, starts, origin, region, frame, nonzero, out, value):
    """Fills integer polygons as cv2.fillPoly does (module docstring) into the region of `out`.

    xs, ys (n,) int64 vertices of all polygons; starts (P + 1,) int64: polygon p is [starts[p], starts[p + 1]);
    frame: see _outlines_and_edges; the rest as for _scan.
    """
    table = _outlines_and_edges(xs, ys, starts, origin, region, frame, out, value)
    first_row, end_row, x_top, dx, winding, count = table
    # OpenCV's x_top is the crossing at first_row
    edges = (first_row, end_row, x_top, first_row, dx, winding)
    _scan(edges, count, (FIXED_ONE, 1), nonzero, origin, region, out, value)


# --- float vertices: pixel centres ------------------------------------------------------------------------------------

@jit
def _centre_edges(xs, ys, starts, region):
    """The float edge table (first_row, end_row, x_top, y_top, slope, winding, count) of the edges that cross a row
    of the region; rows are clamped to the region, so that far-away vertices convert to int64 safely."""
    size = xs.shape[0]
    first_row, end_row = np.empty(size, np.int64), np.empty(size, np.int64)
    x_top, y_top, slope = np.empty(size, np.float64), np.empty(size, np.float64), np.empty(size, np.float64)
    winding = np.empty(size, np.int64)
    y_lo, y_hi = float(region[1]), float(region[3])
    count = 0
    for p in range(starts.shape[0] - 1):
        begin, end = starts[p], starts[p + 1]
        for i in range(begin, end):
            k = i - 1 if i > begin else end - 1
            xa, ya, xb, yb = xs[k], ys[k], xs[i], ys[i]
            if ya == yb:
                continue
            down = ya < yb
            if not down:
                xa, ya, xb, yb = xb, yb, xa, ya
            # rows y with ya <= y < yb are those with ceil(ya) <= y < ceil(yb)
            first = min(max(np.ceil(ya), y_lo), y_hi)
            stop = min(max(np.ceil(yb), y_lo), y_hi)
            if first >= stop:
                continue
            first_row[count], end_row[count] = int(first), int(stop)
            x_top[count], y_top[count] = xa, ya
            slope[count] = (xb - xa) / (yb - ya)
            winding[count] = 1 if down else -1
            count += 1
    return first_row, end_row, x_top, y_top, slope, winding, count


@kernel("void(float64[::1], float64[::1], int64[::1], UniTuple(int64, 2), UniTuple(int64, 4), boolean, uint8[:, ::1], "
        "int64)")
def _fill_centres(xs, ys, starts, origin, region, nonzero, out, value):
    """Fills float polygons by pixel-centre sampling (module docstring) into the region of `out`.

    xs, ys (n,) float64 vertices; the rest as for _fill_fixed_point.
    """
    first_row, end_row, x_top, y_top, slope, winding, count = _centre_edges(xs, ys, starts, region)
    _scan((first_row, end_row, x_top, y_top, slope, winding), count, (1.0, 0.0), nonzero, origin, region, out, value)


# --- the wrapper ------------------------------------------------------------------------------------------------------

def _polygon_arrays(polygons) -> list[np.ndarray]:
    """The polygons as (K, 2) arrays, empty ones dropped; OpenCV's (K, 1, 2) contour layout is accepted too."""
    if isinstance(polygons, np.ndarray):
        polygons = [polygons]
    elif not isinstance(polygons, Sequence):
        raise ValueError(f"polygons must be a (K, 2) array or a sequence of them, got {type(polygons).__name__}")
    arrays = []
    for i, polygon in enumerate(polygons):
        vertices = np.asarray(polygon)
        if vertices.shape == (0,):  # an empty list
            continue
        if vertices.ndim == 3 and vertices.shape[1] == 1:
            vertices = vertices[:, 0]
        if vertices.ndim != 2 or vertices.shape[1] != 2:
            raise ValueError(f"polygon {i} must be a (K, 2) array of x, y vertices, got shape {vertices.shape}")
        if not (np.issubdtype(vertices.dtype, np.integer) or np.issubdtype(vertices.dtype, np.floating)):
            raise ValueError(f"polygon {i} must have integer or floating vertices, got dtype {vertices.dtype}")
        if len(vertices):
            arrays.append(vertices)
    return arrays


def _vertex_table(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(xs, ys, starts, integer): all vertices as contiguous (n,) int64 or float64 columns, polygon p being
    [starts[p], starts[p + 1]), and whether they are integers."""
    integer = [np.issubdtype(a.dtype, np.integer) for a in arrays]
    if any(integer) and not all(integer):
        raise ValueError("polygons mix integer and floating vertices, which follow different rules: use one dtype")
    vertices = np.concatenate([a.astype(np.int64 if integer[0] else np.float64, copy=False) for a in arrays])
    if integer[0] and (vertices.min() < -COORD_LIMIT or vertices.max() > COORD_LIMIT):
        raise ValueError(f"integer vertices must lie within +-{COORD_LIMIT}, got [{vertices.min()}, {vertices.max()}]")
    if not integer[0] and not np.isfinite(vertices).all():
        raise ValueError("polygon vertices must be finite, got NaN or infinity")
    starts = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(a) for a in arrays], out=starts[1:])
    return np.ascontiguousarray(vertices[:, 0]), np.ascontiguousarray(vertices[:, 1]), starts, integer[0]


def _pixel_pair(name: str, pair, minimum: int) -> tuple[int, int]:
    """A pair of whole numbers in [minimum, COORD_LIMIT], as Python ints."""
    values = np.asarray(pair)
    if values.shape != (2,) or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be two integers, got {pair!r}")
    if values.min() < minimum or values.max() > COORD_LIMIT:
        raise ValueError(f"{name} must lie in [{minimum}, {COORD_LIMIT}], got {tuple(values.tolist())}")
    return int(values[0]), int(values[1])


def _output(out, shape: tuple[int, int]) -> np.ndarray:
    if out is None:
        return np.zeros(shape, np.uint8)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape:
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be a {shape} uint8 array, got {got}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")
    return out


def fill_polygons(
    polygons,
    shape: tuple[int, int],
    rule: str = "evenodd",
    offset: tuple[int, int] = (0, 0),
    out: np.ndarray | None = None,
    value: int = 1,
    *,
    frame_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Fills one object's polygons into a (H, W) uint8 mask; returns it (`out` when given).

    polygons: a (K, 2) array of x, y vertices or a sequence of them ((K, 1, 2) contours from cv2.findContours too),
        all integer or all floating. Integer vertices give cv2.fillPoly's pixels (lineType 8, shift 0): OpenCV's
        8-connected outline plus the closed spans between its fixed-point edge crossings. Float vertices give the
        pixels whose centre (x, y) is inside, with the top-left rule for centres on an edge. The module docstring
        states both rules exactly.
    shape: (H, W) of the output.
    rule: "evenodd" (OpenCV's: where polygons overlap or one crosses itself the overlap is cut out; integer outlines
        are drawn all the same) or "nonzero" (the winding number; the same pixels as evenodd for one simple polygon).
    offset: (x0, y0), the output's top-left pixel in the polygons' coordinates: the result is the crop, at offset,
        of the fill of a bigger image, so polygons in frame pixels go straight into a box-sized buffer.
    out: an optional (H, W) uint8 C-contiguous buffer. It is drawn over, not cleared, so that several objects can go
        into one label image with different values.
    value: the fill value, 0..255.
    frame_shape: (H, W) of the image the polygons' coordinates refer to; nothing outside it is drawn. For integer
        vertices, edges that leave it are also clipped as cv2.fillPoly clips them on that image: OpenCV takes a
        clipped edge's slope from its rounded clipped ends, so its pixels near the border depend on the image size.
        By default nothing is clipped, as if the image were unbounded, which gives cv2.fillPoly's pixels whenever
        the vertices are inside its image.
    Integer vertices, shape, offset and frame_shape must lie within +-COORD_LIMIT (2**22).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    height, width = _pixel_pair("shape", shape, 0)
    x0, y0 = _pixel_pair("offset", offset, -COORD_LIMIT)
    if not (isinstance(value, (int, np.integer)) and 0 <= value <= 255):
        raise ValueError(f"value must be an integer in [0, 255], got {value!r}")
    out = _output(out, (height, width))
    # the pixels that may be written: a half-open rectangle (x_lo, y_lo, x_hi, y_hi) in the polygons' coordinates
    region = (x0, y0, x0 + width, y0 + height)
    frame = (0, 0)  # none: nothing is clipped
    if frame_shape is not None:
        frame_h, frame_w = _pixel_pair("frame_shape", frame_shape, 0)
        region = (max(x0, 0), max(y0, 0), min(x0 + width, frame_w), min(y0 + height, frame_h))
        frame = (frame_w, frame_h)
    arrays = _polygon_arrays(polygons)
    if not arrays:
        return out
    xs, ys, starts, integer = _vertex_table(arrays)
    if region[0] >= region[2] or region[1] >= region[3]:
        return out
    if integer:
        _fill_fixed_point(xs, ys, starts, (x0, y0), region, frame, rule == "nonzero", out, int(value))
    else:
        _fill_centres(xs, ys, starts, (x0, y0), region, rule == "nonzero", out, int(value))
    return out

"""The GPU path's Workspace (edgeseg/kernels/cuda/workspace.py), under Numba's CUDA simulator: buffers reused by
name and grown when too small, tables uploaded once per key, and the kernels giving the same results frame after
frame out of one workspace as out of fresh buffers."""

from __future__ import annotations

import numpy as np

from tests.helpers import cudasim

cudasim.use_simulator()

from numba import cuda  # noqa: E402

from edgeseg.inputs.letterbox import box_pixels, mask_geometry  # noqa: E402
from edgeseg.kernels.cuda.masks import masks_in_boxes_cuda  # noqa: E402
from edgeseg.kernels.cuda.nms import decode_raw_cuda  # noqa: E402
from edgeseg.kernels.cuda.workspace import Workspace  # noqa: E402
from edgeseg.kernels.masks import masks_in_boxes  # noqa: E402
from tests.helpers.random_inputs import random_boxes, random_prototypes  # noqa: E402


def test_a_name_is_one_buffer_reused_and_grown_when_too_small():
    ws = Workspace()
    a = ws.array("x", (2, 3), np.float32)
    a.copy_to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = ws.array("x", 4, np.float32)  # smaller: a view of the same memory
    np.testing.assert_array_equal(b.copy_to_host(), [0, 1, 2, 3])
    c = ws.array("x", 7, np.float32)  # larger: a new buffer (at least twice the old one)
    assert c.shape == (7,) and ws._buffers["x"].shape[0] >= 12
    d = ws.array("x", 5, np.int64)  # another dtype: a new buffer too
    assert d.dtype == np.int64 and ws._buffers["x"].dtype == np.int64
    d.copy_to_device(np.arange(5))
    other = ws.array("z", 5, np.int64)  # names do not share memory
    other.copy_to_device(np.full(5, 9))
    np.testing.assert_array_equal(ws.array("x", 5, np.int64).copy_to_host(), np.arange(5))
    assert ws.array("y", (0, 4), np.float32).shape == (0, 4)


def test_fresh_workspace_never_shares_memory():
    ws = Workspace(reuse=False)
    a = ws.array("x", 3, np.int64)
    a.copy_to_device(np.array([1, 2, 3]))
    b = ws.upload("x", np.array([7, 8, 9]))
    np.testing.assert_array_equal(a.copy_to_host(), [1, 2, 3])
    np.testing.assert_array_equal(b.copy_to_host(), [7, 8, 9])


def test_upload_many_is_one_buffer_of_views_shaped_as_the_arrays():
    ws = Workspace()
    arrays = [np.arange(8).reshape(2, 4), np.array([5, 6, 7]), np.zeros((0, 4), np.int64), np.array([[1, 2]])]
    views = ws.upload_many("t", arrays)
    assert [v.shape for v in views] == [a.shape for a in arrays]
    for view, array in zip(views, arrays, strict=True):
        np.testing.assert_array_equal(view.copy_to_host(), array)
    assert ws._buffers["t"].shape[0] >= 13


def test_tables_are_made_once_per_key_and_the_oldest_key_is_dropped():
    ws = Workspace()
    made = []

    def make(key):
        made.append(key)
        return cuda.to_device(np.array([key]))

    for key in [0, 1, 0, 0, 1]:
        assert ws.table(key, lambda key=key: make(key)).copy_to_host()[0] == key
    assert made == [0, 1]
    for key in range(2, 1 + Workspace.GEOMETRIES):  # one key too many: pushes out 0, the least recently used
        ws.table(key, lambda key=key: make(key))
    ws.table(1, lambda: make(1))
    ws.table(0, lambda: make(0))
    assert made[-1] == 0 and made.count(1) == 1 and made.count(0) == 2


def _head(rng: np.random.Generator, objects: int, nc: int = 3, nm: int = 4, anchors: int = 64):
    pred = np.zeros((4 + nc + nm, anchors), np.float32)
    pred[4 : 4 + nc] = rng.uniform(0, 0.2, (nc, anchors))
    for a in rng.choice(anchors, objects, replace=False):
        pred[:4, a] = rng.uniform(8, 24, 2).tolist() + rng.uniform(4, 12, 2).tolist()
        pred[4 + rng.integers(nc), a] = rng.uniform(0.3, 1.0)
        pred[4 + nc :, a] = rng.normal(0, 1, nm)
    return pred


def test_kernels_give_the_same_results_frame_after_frame_from_one_workspace():
    # frames with more, then fewer, then more objects and other image sizes: grown buffers, stale contents and
    # cached tables of other geometries must not leak into the next frame
    rng = np.random.default_rng(3)
    ws = Workspace()
    protos = random_prototypes(rng, (8, 8), nm=4)
    for objects, shape in [(6, (31, 37)), (2, (24, 32)), (9, (33, 52)), (0, (31, 37)), (5, (31, 37))]:
        pred = _head(rng, objects)
        args = (3, 0.25, np.ones(3, np.bool_), False, 0.5, 300, 4096.0, 30000)
        want = decode_raw_cuda(cuda.to_device(pred), *args)
        got = decode_raw_cuda(cuda.to_device(pred), *args, workspace=ws)
        for g, w in zip(got[:3], want[:3], strict=True):
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(got[3].copy_to_host(), want[3].copy_to_host())
        boxes = random_boxes(rng, 3, shape)
        coefs = rng.normal(0, 1, (len(boxes), 4)).astype(np.float32)
        f, crop = mask_geometry((8, 8), shape)
        bounds = box_pixels(boxes, shape)
        flat, offsets, nonzero = masks_in_boxes_cuda(protos, coefs, bounds, f, crop, shape, ws, ws)
        cpu, cpu_offsets = masks_in_boxes(protos, coefs, bounds, f, crop, shape)
        np.testing.assert_array_equal(offsets, cpu_offsets)
        np.testing.assert_array_equal(flat.copy_to_host(), cpu)
        np.testing.assert_array_equal(nonzero.copy_to_host(),
                                      [cpu[offsets[i] : offsets[i + 1]].any() for i in range(len(bounds))])

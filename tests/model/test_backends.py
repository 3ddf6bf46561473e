"""The Backend contract that every backend shares: a closed backend and a misfed batch fail the same way, with the
same error, whichever backend runs the model (ONNX Runtime on the CPU, and TensorRT on the stand-in of
tests/helpers/tensorrt_standin.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg import ConfigError, ProviderError, Segmenter
from edgeseg.model.backends import open_backend
from edgeseg.model.backends.base import Backend, TensorSpec
from tests.helpers import tensorrt_standin
from tests.helpers.tensorrt_standin import engine_from_onnx

# the stand-in's fixture, requested by name below
fake_gpu = tensorrt_standin.fake_gpu

BACKENDS = ["ONNX Runtime", "TensorRT"]
GOOD = np.zeros((1, 3, 640, 640), np.float32)  # what the shapes model takes


def _open(kind, onnx_path, tmp_path, request, profile=None):
    """`onnx_path` opened by `kind`: the ONNX file itself, or a stand-in engine built from it."""
    if kind == "ONNX Runtime":
        return open_backend(onnx_path, ["cpu"])
    request.getfixturevalue("fake_gpu")
    return open_backend(engine_from_onnx(onnx_path, tmp_path / f"{onnx_path.stem}.engine", profile))


@pytest.fixture(params=BACKENDS)
def backend(request, shapes_onnx, tmp_path):
    opened = _open(request.param, shapes_onnx, tmp_path, request)
    yield opened
    opened.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_closed_backend_says_so_for_every_call(kind, shapes_onnx, tmp_path, request):
    backend = _open(kind, shapes_onnx, tmp_path, request)
    described = (backend.providers, backend.input, backend.outputs, dict(backend.metadata))
    backend.close()
    backend.close()  # twice is harmless
    with backend:  # and so is leaving a with block after close()
        pass
    closed = f"the {kind} backend of {backend.path.name} is closed"
    for call in (backend.infer, backend.infer_on_device):
        with pytest.raises(ProviderError) as info:
            call(GOOD)
        assert str(info.value) == closed
        with pytest.raises(ProviderError, match="closed"):  # the state is checked before the batch
            call(GOOD.astype(np.float64))
    # what the model is stays readable: it describes the file, not the freed session
    assert (backend.providers, backend.input, backend.outputs, dict(backend.metadata)) == described


def test_a_closed_backend_frees_the_gpu_memory_once(shapes_onnx, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    backend = open_backend(engine_from_onnx(shapes_onnx, tmp_path / "m.engine"))
    backend.infer(GOOD)
    assert cuda.live
    backend.close()
    assert not cuda.live
    backend.close()  # the stand-in's free() raises on a double free: nothing is freed twice


def test_a_closed_segmenter_says_so(shapes_onnx):
    with Segmenter(shapes_onnx) as seg:
        pass
    with pytest.raises(ProviderError, match="the ONNX Runtime backend of shapes11n-seg.onnx is closed"):
        seg(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize(("batch", "got"), [
    (np.zeros((3, 640, 640), np.float32), "3x640x640 float32"),  # no batch axis
    (np.zeros((1, 1, 3, 640, 640), np.float32), "1x1x3x640x640 float32"),
    (np.zeros((1, 3, 640, 640), np.float64), "1x3x640x640 float64"),
    (np.zeros((1, 3, 640, 640), np.uint8), "1x3x640x640 uint8"),  # an image not yet scaled to 0..1
    (np.zeros((1, 3, 320, 320), np.float32), "1x3x320x320 float32"),  # a fixed dimension
    (np.zeros((2, 3, 640, 640), np.float32), "2x3x640x640 float32"),  # the fixed batch size
])
def test_a_misfed_batch_is_one_line_that_says_what_fits(backend, batch, got):
    expected = f"{backend.path.name} takes a 1x3x640x640 float32 batch, got {got}"
    for call in (backend.infer, backend.infer_on_device):
        with pytest.raises(ConfigError) as info:
            call(batch)
        assert str(info.value) == expected
    outputs = backend.infer(GOOD)  # a refused batch leaves the backend as it was
    assert [o.shape for o in outputs] == [s.shape for s in backend.outputs]


def test_not_an_array_is_refused(backend):
    with pytest.raises(ConfigError) as info:
        backend.infer(GOOD.tolist())
    assert str(info.value) == f"{backend.path.name} takes a 1x3x640x640 float32 batch as a NumPy array, got a list"


def test_the_checks_come_before_the_gpu_is_touched(shapes_onnx, tmp_path, fake_gpu):
    _, cuda = fake_gpu
    with open_backend(engine_from_onnx(shapes_onnx, tmp_path / "m.engine")) as backend:
        with pytest.raises(ConfigError):
            backend.infer_on_device(np.zeros((1, 3, 320, 320), np.float32))
        assert cuda.allocations == 0


@pytest.mark.parametrize("kind", BACKENDS)
def test_dynamic_dimensions_are_free(kind, shapes_dynamic_onnx, tmp_path, request):
    # the stand-in engine's profile pins height and width at 320: only the batch stays free
    profile = [[1, 3, 320, 320], [2, 3, 320, 320], [4, 3, 320, 320]]
    wanted = "*x3x*x*" if kind == "ONNX Runtime" else "*x3x320x320"
    with _open(kind, shapes_dynamic_onnx, tmp_path, request, profile) as backend:
        for n in (1, 3):
            backend.infer(np.zeros((n, 3, 320, 320), np.float32))
        with pytest.raises(ConfigError) as info:
            backend.infer(np.zeros((2, 3, 320, 320), np.float16))
    assert str(info.value) == (f"{backend.path.name} takes a {wanted} float32 batch (* = any size), "
                               "got 2x3x320x320 float16")


class _Echo(Backend):
    """The smallest backend: it runs nothing, so the checks are the base class's alone."""

    kind = "Echo"

    def __init__(self, path):
        self.path = path
        self.input = TensorSpec("images", (None, 3, 32, 32), np.dtype(np.float16))
        self.closed_calls = 0

    def _infer(self, batch):
        return [batch]

    def _close(self):
        self.closed_calls += 1


def test_every_backend_gets_the_checks_from_the_base_class(tmp_path):
    echo = _Echo(tmp_path / "echo.bin")
    batch = np.zeros((5, 3, 32, 32), np.float16)
    assert echo.infer(batch)[0] is batch
    with pytest.raises(NotImplementedError, match="_Echo leaves no outputs on the GPU"):
        echo.infer_on_device(batch)
    with pytest.raises(ConfigError, match=r"^echo.bin takes a \*x3x32x32 float16 batch \(\* = any size\), got "
                                          r"5x3x32x32 float32$"):
        echo.infer(batch.astype(np.float32))
    echo.close()
    echo.close()
    assert echo.closed_calls == 1
    with pytest.raises(ProviderError, match="^the Echo backend of echo.bin is closed$"):
        echo.infer(batch)

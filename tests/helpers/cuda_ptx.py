"""The GPU path's kernels compiled for real GPUs, on a machine without one (test_cuda_ptx.py runs this).

Under Numba's CUDA simulator the kernels run as Python: their real-GPU build (NVVM, libdevice's __fmul_rn, Numba's
CUDA typing of every integer and float operation) never happens. NVVM itself needs no GPU, so this does it here:

    python tests/helpers/cuda_ptx.py record SIGNATURES      # under the simulator: every kernel launch of a small run of
                                                    # the GPU path, with the Numba types of its arguments
    python tests/helpers/cuda_ptx.py compile SIGNATURES     # without it: each kernel to PTX for sm_90 (H100) and sm_87
                                                    # (Jetson Orin); prints a JSON summary; exit 77 without NVVM

Numba compiles a kernel's device functions for "the current device", which needs a driver; here that device is a
stand-in that has only a compute capability.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

TARGETS = ((9, 0), (8, 7))
NO_NVVM = 77


def record(path: Path) -> None:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "record runs under the simulator"
    import numba
    from numba import cuda
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    seen: set[tuple[str, str, tuple]] = set()
    launch = FakeCUDAKernel.__call__

    def typeof(arg):
        if isinstance(arg, FakeCUDAArray):
            arg = arg._ary
        if isinstance(arg, bool):
            return numba.types.boolean
        return numba.typeof(arg)

    def recording(self, *args):
        if not self._device:
            seen.add((self.fn.__module__, self.fn.__name__, tuple(typeof(a) for a in args)))
        return launch(self, *args)

    FakeCUDAKernel.__call__ = recording

    from edgeseg import Segmenter
    from edgeseg.app.synthetic import make_scene
    from edgeseg.assets import __file__ as assets
    from edgeseg.config import PredictConfig
    from edgeseg.inputs.letterbox import mask_geometry
    from edgeseg.kernels.cuda.masks import masks_in_boxes_cuda
    from edgeseg.postprocess.cuda import decode_end2end_cuda, fill_masks_cuda, isolate_cuda

    demo = Path(assets).parent / "shapes11n-seg-320.onnx"
    image = make_scene(128, 96, 3, seed=1).image
    with Segmenter(demo, device="cuda") as seg:
        (result,) = seg(image)
        seg._gpu.to_device(cuda.to_device(np.zeros((2, 3), np.float16)))  # FP16 outputs: the cast kernel
    with Segmenter(demo, device="cuda", device_results=True) as seg:
        (on_device,) = seg(image)
    assert len(result) > 0, "the small run must find objects, or the mask kernels never launch"
    for background in ("black", "transparent"):
        for crop in (True, False):
            isolate_cuda(result, background=background, crop=crop)
    isolate_cuda(on_device)
    fill_masks_cuda(cuda.to_device(image), result.masks, np.full((len(result), 3), 200), 0.5)
    # a source larger than the prototype grid: the upsampling stage
    protos = np.random.default_rng(0).normal(0, 1, (4, 8, 8)).astype(np.float32)
    upsample, crop = mask_geometry((8, 8), (31, 37))
    assert upsample > 1
    masks_in_boxes_cuda(cuda.to_device(protos), cuda.to_device(np.ones((1, 4), np.float32)),
                        np.array([[2, 3, 30, 25]]), upsample, crop, (31, 37))
    rows = np.zeros((4, 6 + 32), np.float32)
    rows[:2, :6] = [[1, 2, 30, 40, 0.9, 1], [5, 6, 50, 60, 0.1, 0]]
    decode_end2end_cuda(cuda.to_device(rows), PredictConfig(conf=0.25))

    kernels = _kernels()
    missing = sorted(f"{m}.{n}" for m, n in kernels if not any((m, n) == s[:2] for s in seen))
    assert not missing, f"kernels that the small run never launched: {missing}"
    path.write_bytes(pickle.dumps(sorted(seen, key=str)))


def _kernels() -> set[tuple[str, str]]:
    """(module, name) of every kernel (not device function) in edgeseg.kernels.cuda."""
    import importlib
    import pkgutil

    from numba.cuda.simulator.kernel import FakeCUDAKernel

    import edgeseg.kernels.cuda as package

    found = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, FakeCUDAKernel) and not value._device and value.fn.__module__ == module.__name__:
                found.add((module.__name__, name))
    return found


def compile_all(path: Path) -> None:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", "compile runs without the simulator"
    import importlib
    from types import SimpleNamespace

    import numba
    from numba import cuda
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        sys.exit(NO_NVVM)
    signatures = pickle.loads(path.read_bytes())
    summary = {}
    for cc in TARGETS:
        dispatcher.get_current_device = lambda cc=cc: SimpleNamespace(compute_capability=cc)
        for module, name, argtypes in signatures:
            kernel = getattr(importlib.import_module(module), name)
            ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc)
            _count(summary, f"{module.rpartition('.')[2]}.{name}", ptx)
            assert ".entry" in ptx, (module, name, cc)
        # the control: a plain a * b + c, which NVVM does fuse, so that a count of 0 above means something
        ptx, _ = cuda.compile_ptx(_multiply_add, (numba.float32[::1],) * 4, cc=cc)
        _count(summary, "control.multiply_add", ptx)
    print(json.dumps(summary, sort_keys=True))


def _multiply_add(a, b, c, out):
    out[0] = a[0] * b[0] + c[0]


def _count(summary: dict, name: str, ptx: str) -> None:
    entry = summary.setdefault(name, {"signatures": 0, "fma": 0, "mul_rn": 0})
    entry["signatures"] += 1
    entry["fma"] += ptx.count("fma.rn.f32")  # a float32 multiply and add fused into one rounding
    entry["mul_rn"] += ptx.count("mul.rn.f32")  # libdevice's __fmul_rn: a product rounded on its own


if __name__ == "__main__":
    command, file = sys.argv[1], Path(sys.argv[2])
    record(file) if command == "record" else compile_all(file)

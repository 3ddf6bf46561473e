"""The one place where the CUDA kernels' compile flags and their exact float32 products are decided.

fastmath stays off, as for the CPU kernels. NVVM also fuses a multiply followed by an add into one FMA (one
rounding where the CPU kernels round twice), which would move mask edges by a pixel now and then. `mul` blocks
that: libdevice's __fmul_rn is never fused. Every float32 product whose result is then added goes through it.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, used by the tests) libdevice has no Python body; the kernels
run as Python on NumPy float32 scalars, which round every operation, so a plain product is the same arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import cuda
from numba.core import config

SIMULATOR = bool(config.ENABLE_CUDASIM)
KERNEL_OPTIONS = dict(fastmath=False)
THREADS = 128  # threads per block of every 1-d launch


def kernel(func):
    """Decorator for every CUDA kernel in edgeseg (compiled on first launch)."""
    return cuda.jit(**KERNEL_OPTIONS)(func)


def device_function(func):
    return cuda.jit(device=True, **KERNEL_OPTIONS)(func)


if SIMULATOR:

    @device_function
    def mul(a, b):
        return a * b

else:
    from numba.cuda import libdevice

    @device_function
    def mul(a, b):
        return libdevice.fmul_rn(a, b)


@device_function
def larger(a, b):
    """max(a, b) as the CPU kernels compute it (b if b > a else a). The built-in max and min do not compile for
    CUDA in this Numba (their overloads take *args, which its device compiler rejects); the simulator hides that."""
    return b if b > a else a


@device_function
def smaller(a, b):
    """min(a, b) as the CPU kernels compute it (b if b < a else a); see larger."""
    return b if b < a else a


@device_function
def owner(offsets, t):
    """The object whose slice [offsets[i], offsets[i + 1]) of a flat buffer holds element t (empty slices skipped)."""
    lo, hi = 0, offsets.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offsets[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


def launch(func, count: int, *args) -> None:
    """func over `count` threads (one per item) in blocks of THREADS; nothing to do for none."""
    if count:
        func[(count + THREADS - 1) // THREADS, THREADS](*args)


if SIMULATOR:  # the simulator's "device" arrays live in host memory; it cannot view another library's GPU memory
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as DeviceArray
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as DeviceArray


def is_device_array(array) -> bool:
    """True for a Numba device array, or (on a GPU) anything with __cuda_array_interface__ (CuPy, PyTorch...)."""
    return isinstance(array, DeviceArray) or (not SIMULATOR and cuda.is_cuda_array(array))


def as_device(array, dtype, name: str):
    """`array` for a kernel: a device array of `dtype` as it is (a foreign one viewed without a copy), a host array
    uploaded. A device array of another dtype is an error: converting it on the device is the caller's choice."""
    if not is_device_array(array):
        return cuda.to_device(np.ascontiguousarray(array, dtype=dtype))
    device = array if isinstance(array, DeviceArray) else cuda.as_cuda_array(array)
    if device.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must be {np.dtype(dtype)} on the device, got {device.dtype}")
    return device


def check_masks(masks, starts: np.ndarray, boxes: np.ndarray) -> None:
    """Raises ValueError unless every box is ordered and each mask (its box's area from starts[i]) lies in `masks`."""
    if len(boxes) == 0:
        return
    if np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ValueError("mask boxes must be [x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")
    ends = starts + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if starts.min() < 0 or ends.max() > masks.shape[0]:
        raise ValueError(f"the masks (starts + box areas) must lie inside the masks buffer of {masks.shape[0]} bytes")

"""Float16 network outputs (FP16 models) to float32 on the device, as the CPU path's astype(np.float32)."""

from __future__ import annotations

import numpy as np
from numba import cuda

from .jit import is_device_array, kernel, launch


@kernel
def _to_float32(src, out):
    t = cuda.grid(1)
    if t < out.shape[0]:
        out[t] = np.float32(src[t])


def to_float32(array):
    """A float32 device array: `array` itself when it already is one, else a converted copy on the device.
    array: a C-contiguous float16 or float32 device array."""
    if not is_device_array(array):
        raise ValueError(f"to_float32 takes a device array, got {type(array).__name__}")
    if array.dtype == np.float32:
        return array
    if array.dtype != np.float16:
        raise ValueError(f"network outputs must be float32 or float16, got {array.dtype}")
    flat = array.reshape(array.size)
    out = cuda.device_array(array.size, np.float32)
    launch(_to_float32, array.size, flat, out)
    return out.reshape(array.shape)

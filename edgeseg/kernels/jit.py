"""The one place where Numba's compile flags are decided.

cache: compiled code is kept on disk, so only the first run on a machine pays for compilation.
nogil: kernels release the GIL, so a pipeline thread can post-process while another runs the network.
fastmath stays off: results must match Ultralytics' float32 arithmetic to the pixel.
"""

from __future__ import annotations

import numba

JIT_OPTIONS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


def jit(func):
    """Decorator for every CPU kernel in edgeseg (compiled lazily, on first call)."""
    return numba.njit(**JIT_OPTIONS)(func)

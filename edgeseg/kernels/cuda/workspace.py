"""GPU buffers that the GPU path reuses from frame to frame.

A frame of post-processing needs about twenty small scratch buffers and tables. Allocating GPU memory costs tens
of microseconds a buffer (and Numba's deferred frees synchronise the device when they run), and each host-to-device
copy waits for the copy engine: per frame, that would cost more than the kernels. A Workspace keeps one buffer per
name, hands out views of it, and grows it (doubling) only when a frame needs more; tables that depend only on the
geometry (the bilinear taps of a source size) are uploaded once per geometry.

A view is valid until the same name is asked for again: whatever must outlive the frame (the masks a caller keeps
on the device, for instance) is taken from a fresh Workspace(reuse=False), which allocates every time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda


class Workspace:
    """Named device buffers, reused (reuse=True) or allocated anew on every request (reuse=False)."""

    GEOMETRIES = 8  # tables of this many geometries are kept; a folder of many image sizes cycles through them

    def __init__(self, reuse: bool = True):
        self.reuse = reuse
        self._buffers: dict[str, Any] = {}
        self._tables: OrderedDict[Any, Any] = OrderedDict()

    def array(self, name: str, shape: int | tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised C-contiguous device array of `shape`, a view of buffer `name`."""
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        size = int(np.prod(shape, dtype=np.int64))
        dtype = np.dtype(dtype)
        if not self.reuse or size == 0:  # an empty array allocates nothing
            return cuda.device_array(shape, dtype)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.shape[0] < size:
            grown = 0 if buffer is None or buffer.dtype != dtype else 2 * buffer.shape[0]
            buffer = self._buffers[name] = cuda.device_array(max(size, grown, 1), dtype)
        return buffer[:size].reshape(shape)

    def upload(self, name: str, host: np.ndarray) -> Any:
        """`host` copied into buffer `name`: one host-to-device copy, no allocation once the buffer is big enough."""
        host = np.ascontiguousarray(host)
        device = self.array(name, host.shape, host.dtype)
        if host.size:
            device.copy_to_device(host)
        return device

    def upload_many(self, name: str, arrays: list[np.ndarray]) -> list[Any]:
        """Device copies of several small host arrays of one dtype, in one host-to-device copy (laid end to end in
        buffer `name`): views shaped as each array."""
        device = self.upload(name, np.concatenate([np.ravel(a) for a in arrays]))
        views, start = [], 0
        for a in arrays:
            views.append(device[start : start + a.size].reshape(a.shape) if a.size
                         else cuda.device_array(a.shape, device.dtype))
            start += a.size
        return views

    def table(self, key: Any, make: Callable[[], Any]) -> Any:
        """make()'s device arrays, made and uploaded once per `key` (a hashable description of what they depend
        on) while that key is among the last GEOMETRIES used."""
        if not self.reuse:
            return make()
        if key in self._tables:
            self._tables.move_to_end(key)
            return self._tables[key]
        value = self._tables[key] = make()
        if len(self._tables) > self.GEOMETRIES:
            self._tables.popitem(last=False)
        return value


def fresh() -> Workspace:
    """A workspace that allocates every buffer anew: for arrays returned to callers who keep them."""
    return Workspace(reuse=False)


"""The few CUDA runtime calls that running a TensorRT engine needs, from whichever Python binding is installed:
cuda-python, CuPy or PyTorch, the first that imports (load_cuda). Every CUDA status is checked and a failure is a
CudaError that names the call; nothing is imported before load_cuda() is called.
"""

from __future__ import annotations

import ctypes
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import CudaError, EdgesegError, ProviderError


@dataclass
class DeviceBuffer:
    """`nbytes` of GPU memory at address `ptr`; `owner` is the binding's own object where it has one."""

    ptr: int
    nbytes: int
    owner: Any = None


@dataclass
class PinnedBuffer:
    """`nbytes` of page-locked host memory, seen from NumPy as `array` (uint8, shape (nbytes,))."""

    array: np.ndarray
    ptr: int
    owner: Any = None


@dataclass
class Stream:
    handle: int  # what TensorRT's execute_async_v3 takes
    owner: Any = None


class CudaArrayView:
    """`shape` and `dtype` at GPU address `ptr`, C order, as __cuda_array_interface__ (version 3): CuPy, PyTorch and
    Numba view it without a copy. It keeps `owner`, the object whose memory it is, alive."""

    def __init__(self, owner: Any, ptr: int, shape: tuple[int, ...], dtype: np.dtype | str):
        self.owner = owner
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": self.dtype.str, "data": (int(ptr), False),
                                         "strides": None, "version": 3}


class CudaRuntime(ABC):
    """The few CUDA runtime calls that running a TensorRT engine needs, from one Python binding.
    Every failure is a CudaError naming the call."""

    name: str

    @abstractmethod
    def set_device(self, device: int) -> None: ...

    @abstractmethod
    def device_buffer(self, nbytes: int) -> DeviceBuffer: ...

    @abstractmethod
    def pinned_buffer(self, nbytes: int) -> PinnedBuffer: ...

    @abstractmethod
    def stream(self) -> Stream: ...

    @abstractmethod
    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        """Queues a copy of the first nbytes of src to dst on the stream."""

    @abstractmethod
    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Stream) -> None: ...

    @abstractmethod
    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None: ...


_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind values


def _host_array(ptr: int, nbytes: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


class _CudaPython(CudaRuntime):
    """NVIDIA's cuda-python: every call returns (status, *results)."""

    name = "cuda-python"

    def __init__(self, cudart: Any):
        self._rt = cudart

    def _call(self, what: str, result: Any) -> Any:
        status, *values = result if isinstance(result, tuple) else (result,)
        if status != self._rt.cudaError_t.cudaSuccess:
            described = self._rt.cudaGetErrorString(status)
            text = described[1].decode() if isinstance(described, tuple) and len(described) > 1 else ""
            detail = f" ({text})" if text else ""
            raise CudaError(f"CUDA call {what} failed: {getattr(status, 'name', status)}{detail}")
        return values[0] if len(values) == 1 else values

    def set_device(self, device: int) -> None:
        self._call(f"cudaSetDevice({device})", self._rt.cudaSetDevice(device))

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call(f"cudaMalloc({nbytes})", self._rt.cudaMalloc(nbytes))), nbytes)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        ptr = int(self._call(f"cudaMallocHost({nbytes})", self._rt.cudaMallocHost(nbytes)))
        return PinnedBuffer(_host_array(ptr, nbytes), ptr)

    def stream(self) -> Stream:
        handle = self._call("cudaStreamCreate", self._rt.cudaStreamCreate())
        return Stream(int(handle), handle)

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync(host to device)",
                   self._rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner))

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync(device to host)",
                   self._rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.owner))

    def synchronize(self, stream: Stream) -> None:
        self._call("cudaStreamSynchronize", self._rt.cudaStreamSynchronize(stream.owner))

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        if isinstance(item, DeviceBuffer):
            self._call("cudaFree", self._rt.cudaFree(item.ptr))
        elif isinstance(item, PinnedBuffer):
            self._call("cudaFreeHost", self._rt.cudaFreeHost(item.ptr))
        else:
            self._call("cudaStreamDestroy", self._rt.cudaStreamDestroy(item.owner))


class _CuPy(CudaRuntime):
    """CuPy's thin runtime wrappers: raw addresses in, CUDARuntimeError out."""

    name = "cupy"

    def __init__(self, runtime: Any):
        self._rt = runtime

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._rt.CUDARuntimeError as e:
            raise CudaError(f"CUDA call {what} failed: {e}") from None

    def set_device(self, device: int) -> None:
        self._call(f"cudaSetDevice({device})", self._rt.setDevice, device)

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call(f"cudaMalloc({nbytes})", self._rt.malloc, nbytes)), nbytes)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        ptr = int(self._call(f"cudaHostAlloc({nbytes})", self._rt.hostAlloc, nbytes, 0))
        return PinnedBuffer(_host_array(ptr, nbytes), ptr)

    def stream(self) -> Stream:
        return Stream(int(self._call("cudaStreamCreate", self._rt.streamCreate)))

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        self._call("cudaMemcpyAsync(host to device)", self._rt.memcpyAsync, dst.ptr, src.ptr, nbytes,
                   _HOST_TO_DEVICE, stream.handle)

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        self._call("cudaMemcpyAsync(device to host)", self._rt.memcpyAsync, dst.ptr, src.ptr, nbytes,
                   _DEVICE_TO_HOST, stream.handle)

    def synchronize(self, stream: Stream) -> None:
        self._call("cudaStreamSynchronize", self._rt.streamSynchronize, stream.handle)

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        if isinstance(item, DeviceBuffer):
            self._call("cudaFree", self._rt.free, item.ptr)
        elif isinstance(item, PinnedBuffer):
            self._call("cudaFreeHost", self._rt.freeHost, item.ptr)
        else:
            self._call("cudaStreamDestroy", self._rt.streamDestroy, item.handle)


class _Torch(CudaRuntime):
    """PyTorch's CUDA tensors as buffers (its caching allocator owns the memory; free() drops the tensor)."""

    name = "torch"

    def __init__(self, torch: Any):
        self._torch = torch
        self._device = 0

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:  # torch.cuda.OutOfMemoryError and CUDA errors are RuntimeErrors
            raise CudaError(f"CUDA call {what} (torch) failed: {str(e).splitlines()[0]}") from None

    def set_device(self, device: int) -> None:
        self._call(f"set_device({device})", self._torch.cuda.set_device, device)
        self._device = device

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        tensor = self._call(f"malloc({nbytes})", self._torch.empty, nbytes, dtype=self._torch.uint8,
                            device=f"cuda:{self._device}")
        return DeviceBuffer(int(tensor.data_ptr()), nbytes, tensor)

    def pinned_buffer(self, nbytes: int) -> PinnedBuffer:
        tensor = self._call(f"malloc_host({nbytes})", self._torch.empty, nbytes, dtype=self._torch.uint8,
                            pin_memory=True)
        return PinnedBuffer(tensor.numpy(), int(tensor.data_ptr()), tensor)

    def stream(self) -> Stream:
        stream = self._call("stream_create", self._torch.cuda.Stream, device=self._device)
        return Stream(int(stream.cuda_stream), stream)

    def _copy(self, what: str, dst: Any, src: Any, nbytes: int, stream: Stream) -> None:
        with self._torch.cuda.stream(stream.owner):
            self._call(what, dst[:nbytes].copy_, src[:nbytes], non_blocking=True)

    def upload(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        self._copy("memcpy_async(host to device)", dst.owner, src.owner, nbytes, stream)

    def download(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
        self._copy("memcpy_async(device to host)", dst.owner, src.owner, nbytes, stream)

    def synchronize(self, stream: Stream) -> None:
        self._call("stream_synchronize", stream.owner.synchronize)

    def free(self, item: DeviceBuffer | PinnedBuffer | Stream) -> None:
        item.owner = None


def load_cuda(error: type[EdgesegError] = ProviderError) -> CudaRuntime:
    """The first CUDA binding that imports: cuda-python, then CuPy, then PyTorch (with CUDA)."""
    tried = []
    for module in ("cuda.bindings.runtime", "cuda.cudart"):  # cuda-python >= 12.6, and older releases
        try:
            return _CudaPython(importlib.import_module(module))
        except ImportError:
            pass
    tried.append("cuda-python")
    try:
        return _CuPy(importlib.import_module("cupy.cuda.runtime"))
    except ImportError:
        tried.append("cupy")
    try:
        torch = importlib.import_module("torch")
        if torch.cuda.is_available():
            return _Torch(torch)
        tried.append("torch (installed without CUDA, or no GPU)")
    except ImportError:
        tried.append("torch")
    raise error(f"no CUDA binding for Python found (tried {', '.join(tried)}): pip install cuda-python "
                "(the major version of your CUDA driver, e.g. 'cuda-python==12.*')")

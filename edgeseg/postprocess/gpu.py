"""The GPU path's link to CUDA: whether it is there (a CudaError that says what is missing when it is not), and the
GPU buffers of other libraries (ONNX Runtime OrtValues, CuPy arrays, PyTorch tensors) seen as Numba device arrays
without a copy.

numba.cuda is imported by these functions, when the GPU path is asked for: `import edgeseg` never imports it.
With NUMBA_ENABLE_CUDASIM=1 in the environment before Numba is imported, numba.cuda is Numba's CUDA simulator:
the kernels then run as Python on the CPU (thousands of times slower), which is how the tests check them on
machines without a GPU. A warning says so whenever the GPU path starts on the simulator.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import CudaError

log = logging.getLogger(__name__)

INSTALL_HINT = ("install the NVIDIA driver and, for Numba's CUDA compiler, the CUDA toolkit's NVVM "
                "(pip install 'numba-cuda[cu12]', or conda install cuda-nvcc); or use device='cpu'")
ORT_TYPESTR = {"tensor(float)": "<f4", "tensor(float16)": "<f2", "tensor(double)": "<f8", "tensor(uint8)": "|u1",
               "tensor(int32)": "<i4", "tensor(int64)": "<i8"}


def simulated() -> bool:
    """True when numba.cuda is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1 when numba.cuda was imported)."""
    from ..kernels.cuda.jit import SIMULATOR

    return SIMULATOR


def require_cuda(device_id: int = 0) -> Any:
    """numba.cuda with GPU `device_id` selected for this thread, or a CudaError saying what is missing."""
    try:
        from numba import cuda

        from ..kernels.cuda import jit  # noqa: F401  (the kernels' flags, decided as numba.cuda is imported)
    except Exception as e:  # a broken CUDA install can fail in many ways at import
        raise CudaError(f"device='cuda': numba.cuda cannot be imported ({type(e).__name__}: {e}); {INSTALL_HINT}"
                        ) from None
    if simulated():
        log.warning("edgeseg: numba.cuda is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): the GPU path runs as "
                    "Python on the CPU, for tests only")
        return cuda
    if not cuda.is_available():
        raise CudaError(f"device='cuda' needs a CUDA GPU that Numba can use, and there is none here "
                        f"({_reason(cuda)}); {INSTALL_HINT}")
    count = len(cuda.gpus)
    if not 0 <= device_id < count:
        raise CudaError(f"device_id {device_id} asks for a GPU this machine does not have (it has {count})")
    cuda.select_device(device_id)
    return cuda


def _reason(cuda: Any) -> str:
    """Why Numba cannot use CUDA, in one line: the driver's initialisation error, else the missing compiler."""
    text = cuda.cuda_error() or ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return "the CUDA driver loads, but libNVVM, the compiler Numba needs, was not found"
    return lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]


def as_device_array(buffer: Any) -> Any:
    """A Numba device array that views `buffer`'s GPU memory, no copy, keeping `buffer` alive as its owner.

    buffer: a Numba device array (returned as it is), an onnxruntime.OrtValue on a CUDA device, or anything with
    __cuda_array_interface__ (CuPy arrays, PyTorch CUDA tensors). Host memory is refused: uploading is a copy the
    caller should see (numba.cuda.to_device).
    """
    from ..kernels.cuda.jit import SIMULATOR, DeviceArray
    from ..model.backends.cuda_runtime import CudaArrayView

    cuda = require_cuda_module()
    if isinstance(buffer, DeviceArray):
        return buffer
    if type(buffer).__name__ == "OrtValue" and hasattr(buffer, "data_ptr"):
        device = buffer.device_name().lower()
        if device != "cuda":
            raise CudaError(f"this OrtValue lives on '{device}', not on a CUDA device: bind the session's outputs "
                            "to 'cuda' (IO binding) or upload the array")
        typestr = ORT_TYPESTR.get(buffer.data_type())
        if typestr is None:
            raise CudaError(f"OrtValue of type {buffer.data_type()} cannot be viewed as a device array")
        buffer = CudaArrayView(buffer, buffer.data_ptr(), tuple(buffer.shape()), typestr)
    if SIMULATOR:
        raise CudaError("Numba's CUDA simulator cannot view GPU memory of other libraries (it has no GPU)")
    if not cuda.is_cuda_array(buffer):
        raise CudaError(f"{type(buffer).__name__} is not GPU memory (it has no __cuda_array_interface__)")
    return cuda.as_cuda_array(buffer)


def require_cuda_module() -> Any:
    """numba.cuda, imported on first use (no device check: see require_cuda)."""
    from numba import cuda

    return cuda


def upload(array: np.ndarray) -> Any:
    """One copy of a host array to the GPU (the network outputs when onnxruntime ran on the CPU)."""
    return require_cuda_module().to_device(np.ascontiguousarray(array))

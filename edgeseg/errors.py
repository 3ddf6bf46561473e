"""The project's error types: one base class, a few subclasses that say what went wrong."""


class EdgesegError(Exception):
    """Base class of every error edgeseg raises on purpose."""


class ModelNotFoundError(EdgesegError, FileNotFoundError):
    """The model file does not exist."""


class ModelFormatError(EdgesegError):
    """The model file exists but cannot be read as an ONNX model (truncated, corrupt, other format)."""


class NotSegmentationModelError(EdgesegError):
    """The model loads but its outputs are not those of a YOLO segmentation model."""


class ProviderError(EdgesegError):
    """An execution provider was asked for that the installed onnxruntime does not offer."""


class SourceError(EdgesegError):
    """An input image, folder or pattern cannot be read."""


class ConfigError(EdgesegError, ValueError):
    """A setting has a wrong type or value."""


class OutputError(EdgesegError):
    """An output file or folder cannot be written."""


class ExportError(EdgesegError):
    """A checkpoint cannot be exported, or the exported model does not match the original."""


class KernelError(EdgesegError):
    """edgeseg's compiled kernels were asked for (EDGESEG_KERNELS=aot) but are missing or out of date."""


class CudaError(ProviderError):
    """A CUDA or TensorRT call failed on the GPU: no device, driver too old, out of memory, execution failed."""

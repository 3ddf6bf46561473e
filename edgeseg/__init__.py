"""edgeseg: a lean runtime for YOLO instance segmentation (ONNX Runtime + NumPy/Numba, no PyTorch)."""

from .config import PredictConfig, ProviderOptions, load_config
from .errors import (
    ConfigError,
    CudaError,
    EdgesegError,
    ExportError,
    ModelFormatError,
    ModelNotFoundError,
    NotSegmentationModelError,
    OutputError,
    ProviderError,
    SourceError,
)
from .kernels.raster import fill_polygons
from .results import Boxes, Masks, Results
from .segmenter import Segmenter

__version__ = "0.1.0"

__all__ = [
    "Boxes", "ConfigError", "CudaError", "EdgesegError", "ExportError", "Masks", "ModelFormatError", "ModelNotFoundError",
    "NotSegmentationModelError", "OutputError", "PredictConfig", "ProviderError", "ProviderOptions", "Results", "Segmenter", "SourceError",
    "fill_polygons", "load_config",
]  # fmt: skip

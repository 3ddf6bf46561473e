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
from .process_video import VideoReport, process_video
from .results import Boxes, Masks, Results
from .segmenter import Segmenter
from .tracking import Tracker, TrackerConfig
from .video import open_source

__version__ = "0.1.0"

__all__ = [
    "Boxes", "ConfigError", "CudaError", "EdgesegError", "ExportError", "Masks", "ModelFormatError", "ModelNotFoundError",
    "NotSegmentationModelError", "OutputError", "PredictConfig", "ProviderError", "ProviderOptions", "Results", "Segmenter", "SourceError",
    "Tracker", "TrackerConfig", "VideoReport", "fill_polygons", "load_config", "open_source", "process_video",
]  # fmt: skip

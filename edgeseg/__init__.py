"""edgeseg: a lean runtime for YOLO instance segmentation (ONNX Runtime + NumPy/Numba, no PyTorch)."""

from importlib import import_module
from typing import TYPE_CHECKING

from .config import PredictConfig, ProviderOptions, load_config
from .errors import (
    ConfigError,
    CudaError,
    EdgesegError,
    ExportError,
    KernelError,
    ModelFormatError,
    ModelNotFoundError,
    NotSegmentationModelError,
    OutputError,
    ProviderError,
    SourceError,
)
from .results import Boxes, Masks, Results
from .segmenter import Segmenter

__version__ = "0.1.0"

# Video, tracking and drawing load on first use: a process that segments images never pays for their imports,
# part of the time to its first result (edgeseg.app.benchmark.startup measures it).
_LAZY = {
    "VideoReport": "app.process_video", "process_video": "app.process_video", "Tracker": "tracking",
    "TrackerConfig": "tracking", "MaskTracker": "tracking", "BotSort": "tracking", "make_tracker": "tracking",
    "open_source": "inputs.source", "fill_polygons": "kernels.raster", "MultiSource": "inputs.streams",
    "StreamsReport": "app.process_streams", "process_streams": "app.process_streams",
}

if TYPE_CHECKING:
    from .app.process_streams import StreamsReport, process_streams
    from .app.process_video import VideoReport, process_video
    from .inputs.source import open_source
    from .inputs.streams import MultiSource
    from .kernels.raster import fill_polygons
    from .tracking import BotSort, MaskTracker, Tracker, TrackerConfig, make_tracker


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Boxes", "BotSort", "ConfigError", "CudaError", "EdgesegError", "ExportError", "KernelError", "MaskTracker",
    "Masks", "ModelFormatError", "ModelNotFoundError", "MultiSource", "NotSegmentationModelError", "OutputError",
    "PredictConfig", "ProviderError", "ProviderOptions", "Results", "Segmenter", "SourceError", "StreamsReport",
    "Tracker", "TrackerConfig", "VideoReport", "fill_polygons", "load_config", "make_tracker", "open_source",
    "process_streams", "process_video",
]  # fmt: skip

"""Prediction settings as data: one frozen dataclass, validated once, loadable from YAML."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

# The detector's threshold under track() when no conf is given, as Ultralytics' model.track: the trackers' second
# association takes the detections between track_low_thresh (0.1) and track_high_thresh, which predict's 0.25 drops.
TRACK_CONF = 0.1
CUDNN_CONV_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
DEVICES = ("cpu", "cuda")  # where post-processing runs
# what runs the network: "auto" by the model file (.onnx: ONNX Runtime; .engine/.plan: TensorRT; .xml or an
# _openvino_model folder: OpenVINO), or one named
BACKENDS = ("auto", "onnxruntime", "tensorrt", "openvino")
OPENVINO_HINTS = ("latency", "throughput")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class ProviderOptions:
    """Settings of ONNX Runtime's execution providers (CPU threads; CUDA and TensorRT) and of the device a
    TensorRT engine runs on. The defaults leave every provider's own defaults in place."""

    device_id: int | None = None  # GPU index for CUDA and TensorRT; None: device 0, or N from 'cuda:N'
    trt_fp16: bool = False  # TensorRT provider: allow FP16 kernels
    trt_int8: bool = False  # TensorRT provider: INT8, for models with Q/DQ nodes (an INT8 QDQ export)
    trt_engine_cache: str | None = None  # folder where the TensorRT provider keeps the engines it builds
    trt_timing_cache: str | None = None  # folder for TensorRT's timing cache: faster rebuilds
    trt_workspace_gib: float | None = None  # TensorRT provider's workspace limit in GiB; None: its default
    cudnn_conv_algo_search: str | None = None  # CUDA provider: EXHAUSTIVE (its default), HEURISTIC or DEFAULT
    # CUDA and TensorRT providers: capture the network once as a CUDA graph and replay it (fewer launches). Needs
    # fixed input and output shapes and device="cuda" (IO binding to fixed GPU buffers, which ONNX Runtime requires).
    enable_cuda_graph: bool = False
    # ONNX Runtime's worker threads spin between runs: the lowest latency for one image after another, but CPU
    # taken from other work on the same cores. A video pipeline turns it off (measured: 10.2 -> 12.9 fps).
    cpu_spinning: bool = True
    # ONNX Runtime's intra-op threads on the CPU; None: its default, one per physical core. Fewer leave cores free for
    # the other stages of a video pipeline (reading, drawing, writing), which then overlap with the network.
    cpu_threads: int | None = None
    # OpenVINO backend: the device (CPU, GPU, GPU.1, NPU, AUTO, AUTO:GPU,CPU ...; None: CPU, or DEV of 'openvino:DEV'),
    # the performance hint (None: latency; throughput: several streams, for runs in flight at once), a folder where
    # OpenVINO caches compiled models (created), so that later starts skip compiling, and the precision it computes
    # in (None: f32 on the CPU, whose results then match ONNX Runtime's to float tolerance, and each other device's
    # own default; bf16 or f16: faster on CPUs that have them, measured 1.7x with bf16 on an AMD EPYC, less exact)
    openvino_device: str | None = None
    openvino_hint: str | None = None
    openvino_cache: str | None = None
    openvino_precision: str | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.device_id is not None and (isinstance(self.device_id, bool) or not isinstance(self.device_id, int)
                                           or self.device_id < 0):
            raise ConfigError(f"device_id must be a GPU index (0, 1, ...) or null, got {self.device_id!r}")
        threads = self.cpu_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"cpu_threads must be a number of threads (1, 2, ...) or null, got {threads!r}")
        for name in ("trt_fp16", "trt_int8", "cpu_spinning", "enable_cuda_graph"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("trt_engine_cache", "trt_timing_cache", "openvino_cache"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
                raise ConfigError(f"{name} must be a folder path or null, got {value!r}")
            set_(name, os.fspath(value))
        gib = self.trt_workspace_gib
        if gib is not None:
            if isinstance(gib, bool) or not isinstance(gib, (int, float)) or not 0 < gib < 1024:
                raise ConfigError(f"trt_workspace_gib must be a positive number of GiB or null, got {gib!r}")
            set_("trt_workspace_gib", float(gib))
        # settings that take one of a few names, written in either case: stored as the library spells them
        for name, choices, spelled in (("cudnn_conv_algo_search", CUDNN_CONV_ALGO_SEARCH, str.upper),
                                       ("openvino_hint", OPENVINO_HINTS, str.lower),
                                       ("openvino_precision", OPENVINO_PRECISIONS, str.lower)):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or spelled(value) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)} or null, got {value!r}")
            set_(name, spelled(value))
        device = self.openvino_device
        if device is not None:
            if not isinstance(device, str) or not device.strip() or any(c.isspace() for c in device.strip()):
                raise ConfigError(f"openvino_device must be an OpenVINO device name (CPU, GPU, NPU, AUTO, ...) or "
                                  f"null, got {device!r}")
            set_("openvino_device", device.strip().upper())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "provider_options") -> ProviderOptions:
        """From a YAML mapping; unknown keys are an error."""
        return settings_from_mapping(cls, data, where)

    def replace(self, **changes: Any) -> ProviderOptions:
        """A copy with some settings changed; None values leave a setting as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class PredictConfig:
    """Settings of one Segmenter. Defaults are Ultralytics' predict defaults."""

    conf: float = 0.25
    iou: float = 0.7
    imgsz: tuple[int, int] | None = None  # (h, w); None: the model's own size
    max_det: int = 300
    classes: tuple[int, ...] | None = None
    agnostic_nms: bool = False
    multi_label: bool = False
    # True: masks at the source image's resolution (Ultralytics' retina_masks=True); False: in the network's input
    # frame, as Ultralytics' default predict gives them (masks.data (N, in_h, in_w), outlines scaled to the source)
    retina_masks: bool = True
    batch: int = 1
    providers: str | tuple[str, ...] = "auto"
    provider_options: ProviderOptions = field(default_factory=ProviderOptions)  # a mapping is accepted too
    # where post-processing runs: "cpu" (Numba kernels) or "cuda" (numba.cuda kernels, edgeseg.postprocess.cuda;
    # CudaError when there is no usable GPU, never a fallback)
    device: str = "cpu"
    device_results: bool = False  # device="cuda" only: leave the masks on the GPU (DeviceMasks) instead of copying
    backend: str = "auto"  # what runs the network: auto (by the model file), onnxruntime, tensorrt or openvino

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("conf", "iou"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
            set_(name, float(value))
        for name in ("max_det", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        set_("imgsz", parse_imgsz(self.imgsz))
        if self.classes is not None:
            classes = (self.classes,) if isinstance(self.classes, int) else self.classes
            if isinstance(classes, str) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                   for c in classes):
                raise ConfigError(f"classes must be non-negative integers, got {self.classes!r}")
            if not classes:  # it would keep no class at all: every image would come back empty
                raise ConfigError("classes is empty: give the class ids to keep, or none for all classes")
            set_("classes", tuple(classes))
        for name in ("agnostic_nms", "multi_label", "retina_masks"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        providers = self.providers
        if isinstance(providers, str):
            providers = providers if providers == "auto" else (providers,)
        elif isinstance(providers, Sequence) and providers and all(isinstance(p, str) for p in providers):
            providers = tuple(providers)
        else:
            raise ConfigError(f"providers must be 'auto' or a list of provider names, got {self.providers!r}")
        set_("providers", providers)
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.provider_options, ProviderOptions):
            set_("provider_options", ProviderOptions.from_mapping(self.provider_options))
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r} (the GPU index is "
                              "provider_options.device_id)")
        if not isinstance(self.device_results, bool):
            raise ConfigError(f"device_results must be true or false, got {self.device_results!r}")
        if self.device_results and self.device != "cuda":
            raise ConfigError("device_results=True leaves masks on the GPU: it needs device='cuda'")
        if not self.retina_masks and self.device != "cpu":
            raise ConfigError("retina_masks=False (masks in the network's input frame) runs on the CPU path only for "
                              "now: use device='cpu', or retina_masks=True on the GPU")
        if self.provider_options.enable_cuda_graph and self.device != "cuda":
            raise ConfigError("enable_cuda_graph needs device='cuda': ONNX Runtime replays a CUDA graph only with its "
                              "inputs and outputs bound to fixed GPU buffers, which the GPU path does")

    def replace(self, **changes: Any) -> PredictConfig:
        """A copy with some settings changed; None values leave a setting as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def parse_imgsz(value: Any) -> tuple[int, int] | None:
    """640 -> (640, 640); [480, 640] or "480,640" -> (480, 640); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"imgsz must be an integer or 'h,w', got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, Sequence) and len(value) == 1:
        value = (value[0], value[0])
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(f"imgsz must be a positive integer or (h, w), got {value!r}")
    return int(value[0]), int(value[1])


ISOLATE_BACKGROUNDS = ("black", "transparent")
ISOLATE_SOURCES = ("mask", "contour")


@dataclass(frozen=True)
class IsolateOptions:
    """How to cut objects out: on black or transparent, cropped to the box or full frame, from the mask
    or from the rasterized outline (the contour recipe)."""

    background: str = "black"
    crop: bool = True
    source: str = "mask"

    def __post_init__(self) -> None:
        if self.background not in ISOLATE_BACKGROUNDS:
            raise ConfigError(f"background must be one of {', '.join(ISOLATE_BACKGROUNDS)}, got {self.background!r}")
        if self.source not in ISOLATE_SOURCES:
            raise ConfigError(f"source must be one of {', '.join(ISOLATE_SOURCES)}, got {self.source!r}")
        if not isinstance(self.crop, bool):
            raise ConfigError(f"crop must be true or false, got {self.crop!r}")

    def regions(self, xyxy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """(N, 4) int64 [x1, y1, x2, y2) each cut-out covers in a frame of `shape` (h, w): the box as the classic
        recipe makes it, box.astype(int) (truncated; boxes are >= 0), or the whole frame."""
        if not self.crop:
            return np.tile(np.array([0, 0, shape[1], shape[0]], np.int64), (len(xyxy), 1))
        return np.trunc(xyxy).astype(np.int64).reshape(-1, 4)


def settings_from_mapping(cls: Any, data: Mapping[str, Any] | None, where: str) -> Any:
    """An instance of the settings dataclass `cls` from a YAML mapping (None: the defaults). A key that is not one
    of its fields is an error that lists the known ones: a typo never passes silently as a default."""
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data)


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping a YAML settings file holds ({} for an empty file). ConfigError naming `what` and the file for a
    missing, unreadable, binary or malformed file, or one that holds something other than a mapping."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what} file {path}: it is not a text (UTF-8 YAML) file") from None
    except (OSError, yaml.YAMLError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise ConfigError(f"cannot read {what} file {path}: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path} must be a mapping of settings, got {type(data).__name__}")
    return data


# the settings files shipped inside the package (package data), found by bare name from any folder
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    """The names of the settings files shipped in edgeseg/configs, sorted."""
    return sorted(p.name for p in SHIPPED_CONFIGS.glob("*.yaml"))


def find_settings_file(path: str | os.PathLike, what: str = "config") -> Path:
    """The settings file `path` names: the path itself when it exists; else, for a bare file name such as
    "bytetrack.yaml", the file of that name shipped in edgeseg/configs, as Ultralytics finds its own files from any
    folder. A bare name found in neither place is a ConfigError that lists the shipped files; a missing path with a
    folder in it ("./bytetrack.yaml" too) is a ConfigError that names it as given."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ConfigError(f"{what} file must be a path or the name of a shipped file, got {path!r}")
    given = Path(path)
    try:
        if given.exists():
            return given
    except OSError as e:  # e.g. a parent folder this user may not enter
        raise ConfigError(f"cannot reach {what} file {given}: {e.strerror or e}") from None
    if given.name != os.fspath(path):  # a path with a folder: the user meant that file, not a shipped one
        raise ConfigError(f"{what} file not found: {os.fspath(path)}")
    shipped = SHIPPED_CONFIGS / given.name
    if shipped.is_file():
        return shipped
    raise ConfigError(f"{what} file not found: {given.name} is neither a file here nor one shipped with edgeseg "
                      f"({', '.join(shipped_configs())}); give a path to a YAML file")


def load_config(path: str | os.PathLike) -> PredictConfig:
    """Reads a YAML settings file: a path, or the bare name of a file shipped in edgeseg/configs ("default.yaml").
    Unknown keys are an error."""
    path = find_settings_file(path, "config")
    return settings_from_mapping(PredictConfig, read_yaml(path), str(path))

"""ONNX -> TensorRT engine with TensorRT's Python API: FP16, INT8 (entropy calibration on images letterboxed as the
runtime letterboxes them), workspace limit, a dynamic-shape profile, a timing cache.

    build_engine("yolo11n-seg.onnx", "yolo11n-seg.engine", half=True)

Writes the engine (to a temporary name, then renamed) and `{engine}.json`, the ONNX model's metadata for the
runtime (edgeseg.model.backends.engine_file reads it). Every argument is checked before TensorRT is imported, so a bad
call fails in a second, on any machine, and not after minutes of building.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, ExportError, ModelFormatError, ModelNotFoundError, SourceError
from edgeseg.inputs.images import read_image, to_bgr
from edgeseg.inputs.preprocess import Preprocessor
from edgeseg.model.backends.cuda_runtime import CudaRuntime, load_cuda
from edgeseg.model.backends.engine_file import ENGINE_SUFFIXES, write_sidecar
from edgeseg.model.backends.tensorrt import import_tensorrt, tensorrt_logger, tensorrt_version
from edgeseg.outputs.files import write_bytes

log = logging.getLogger(__name__)

Shape = tuple[int, int, int, int]
ALTERNATIVE = "; or export with --format onnx and run it on ONNX Runtime's TensorRT provider (--device tensorrt)"
CALIBRATION_MAGIC = b"edgeseg-calibration-cache "


@dataclass(frozen=True)
class EnginePlan:
    """Everything build_engine will do, checked: made by plan_engine() without TensorRT."""

    onnx_path: Path
    out: Path
    input_name: str
    input_shape: tuple[int | None, ...]  # as the ONNX file declares it; None for a dynamic dimension
    input_dtype: np.dtype
    metadata: dict[str, str]  # the ONNX model's metadata_props
    stride: int
    profile: tuple[Shape, Shape, Shape] | None  # (min, opt, max) for a dynamic input
    half: bool
    int8: bool
    calib_files: tuple[Path, ...]
    workspace_gib: float
    timing_cache: Path | None
    verbose: bool

    @property
    def calib_shape(self) -> Shape:
        """Calibration batches have the profile's opt shape (TensorRT calibrates at it), else the fixed shape."""
        return self.profile[1] if self.profile else tuple(self.input_shape)  # type: ignore[return-value]

    @property
    def calib_cache(self) -> Path:
        return self.out.with_name(self.out.name + ".calib")

    @property
    def precision(self) -> str:
        return "+".join(p for p, on in (("int8", self.int8), ("fp16", self.half)) if on) or "fp32"


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    *,
    half: bool = False,
    int8: bool = False,
    calib_dir: str | Path | None = None,
    calib_images: int = 500,
    workspace_gib: float = 4.0,
    min_shape: Sequence[int] | str | None = None,
    opt_shape: Sequence[int] | str | None = None,
    max_shape: Sequence[int] | str | None = None,
    timing_cache: str | Path | None = None,
    verbose: bool = False,
) -> Path:
    """Builds a TensorRT engine from a YOLO-seg ONNX model; returns `out`.

    half: FP16 kernels where TensorRT finds them faster. int8: INT8, calibrated on `calib_images` images of
    `calib_dir` (spread evenly over the folder); with half too, layers that cannot run in INT8 run in FP16
    rather than FP32. The calibration cache `{out}.calib` is reused while the model and images are the same.
    min/opt/max_shape: (batch, 3, height, width), or "1x3x640x640", for a model with a dynamic input, and only
    then; height and width multiples of the model's stride; TensorRT tunes for opt. workspace_gib: TensorRT's
    scratch memory limit. timing_cache: a file of kernel timings, read if present and updated, which makes
    later builds on the same GPU much faster.
    """
    plan = plan_engine(onnx_path, out, half=half, int8=int8, calib_dir=calib_dir, calib_images=calib_images,
                       workspace_gib=workspace_gib, min_shape=min_shape, opt_shape=opt_shape, max_shape=max_shape,
                       timing_cache=timing_cache, verbose=verbose)
    trt = import_tensorrt(ExportError, ALTERNATIVE)
    if tensorrt_version(trt) >= (11, 0) and (plan.half or plan.int8):
        raise ExportError(f"TensorRT {trt.__version__} builds strongly typed networks only (no FP16/INT8 builder "
                          "flags): export an FP16 or INT8 QDQ ONNX model and build it without half/int8")
    return _build(trt, plan)


def plan_engine(
    onnx_path: str | Path,
    out: str | Path,
    *,
    half: bool = False,
    int8: bool = False,
    calib_dir: str | Path | None = None,
    calib_images: int = 500,
    workspace_gib: float = 4.0,
    min_shape: Sequence[int] | str | None = None,
    opt_shape: Sequence[int] | str | None = None,
    max_shape: Sequence[int] | str | None = None,
    timing_cache: str | Path | None = None,
    verbose: bool = False,
) -> EnginePlan:
    """Checks build_engine's arguments against each other and the ONNX file, without TensorRT."""
    from .to_onnx import check_writable

    onnx_path, out = Path(onnx_path), Path(out)
    for name, value in (("half", half), ("int8", int8), ("verbose", verbose)):
        if not isinstance(value, bool):
            raise ExportError(f"{name} must be True or False, got {value!r}")
    if isinstance(workspace_gib, bool) or not isinstance(workspace_gib, numbers.Real) or not 0 < workspace_gib <= 1024:
        raise ExportError(f"workspace_gib must be a positive number of GiB, got {workspace_gib!r}")
    if isinstance(calib_images, bool) or not isinstance(calib_images, int) or calib_images < 1:
        raise ExportError(f"calib_images must be a positive integer, got {calib_images!r}")
    if out.suffix.lower() not in ENGINE_SUFFIXES:
        raise ExportError(f"the engine file must end in {' or '.join(ENGINE_SUFFIXES)} (how edgeseg recognises "
                          f"engines), got {out.name}")
    name, dims, dtype, metadata = read_onnx_input(onnx_path)
    stride = _stride(metadata)
    shown = "x".join("?" if d is None else str(d) for d in dims)
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ExportError(f"{onnx_path.name}: input '{name}' is {shown}; a YOLO model takes (batch, 3, height, width)")
    given = {k: parse_shape(v, k) for k, v in (("min_shape", min_shape), ("opt_shape", opt_shape),
                                               ("max_shape", max_shape))}
    profile = None
    if None not in dims:
        if any(v is not None for v in given.values()):
            raise ExportError(f"{onnx_path.name} has a fixed input {shown}; min/opt/max shapes are for models with "
                              "a dynamic input (export the ONNX model with dynamic=True)")
    else:
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ExportError(f"{onnx_path.name} has a dynamic input {shown}: give min_shape, opt_shape and max_shape "
                              f"(batch, 3, height, width) for TensorRT's profile; missing: {', '.join(missing)}")
        low, opt, high = given.values()
        profile = _check_profile(low, opt, high, dims, stride)  # type: ignore[arg-type]
    calib_shape: Shape = profile[1] if profile else tuple(dims)  # type: ignore[assignment]
    files: tuple[Path, ...] = ()
    if int8:
        if calib_dir is None:
            raise ExportError("int8 needs calibration images: give calib_dir, a folder of images like those the "
                              "model will see")
        from .quantize import calibration_files

        try:
            files = tuple(calibration_files(calib_dir, calib_images))
        except SourceError as e:
            raise ExportError(str(e)) from None
        if len(files) < calib_shape[0]:
            raise ExportError(f"INT8 calibration runs batches of {calib_shape[0]} (the {'opt' if profile else 'fixed'}"
                              f" batch) but {calib_dir} holds only {len(files)} images")
    elif calib_dir is not None:
        raise ExportError("calib_dir is only used with int8=True")
    if out.resolve() == onnx_path.resolve():
        raise ExportError(f"the engine would overwrite its source {onnx_path}")
    check_writable(out)
    cache = Path(timing_cache) if timing_cache is not None else None
    if cache is not None:
        if cache.exists() and not cache.is_file():
            raise ExportError(f"timing_cache must be a file, {cache} is not")
        check_writable(cache)
    return EnginePlan(onnx_path, out, name, dims, dtype, metadata, stride, profile, half, int8, files,
                      float(workspace_gib), cache, verbose)


def read_onnx_input(path: Path) -> tuple[str, tuple[int | None, ...], np.dtype, dict[str, str]]:
    """(input name, input dims with None where dynamic, input dtype, metadata_props) of an ONNX file."""
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFormatError(f"model path is not a file: {path}")
    try:
        import onnx
    except ImportError:
        raise ExportError("building an engine reads the ONNX file with the onnx package: pip install onnx") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and onnx's own errors, for files that are not ONNX
        raise ModelFormatError(f"cannot read {path} as an ONNX model (truncated, corrupt or not ONNX): "
                               f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelFormatError(f"{path.name} has {len(inputs)} inputs; a YOLO model has one image input")
    tensor = inputs[0].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return inputs[0].name, dims, dtype, {p.key: p.value for p in model.metadata_props}


def parse_shape(value: Sequence[int] | str | None, what: str = "shape") -> Shape | None:
    """(1, 3, 640, 640), [1, 3, 640, 640], "1x3x640x640" or "1,3,640,640" -> (1, 3, 640, 640); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s]+", value.strip()) if p]
        value = [int(p) if p.isdigit() else p for p in parts]  # type: ignore[misc]
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 4
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ExportError(f"{what} must be four positive integers (batch, 3, height, width), like 1x3x640x640; "
                          f"got {value!r}")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _check_profile(
    low: Shape, opt: Shape, high: Shape, dims: tuple[int | None, ...], stride: int
) -> tuple[Shape, Shape, Shape]:
    named = {"min_shape": low, "opt_shape": opt, "max_shape": high}
    for what, shape in named.items():
        for axis, (d, fixed) in enumerate(zip(shape, dims, strict=True)):
            if fixed is not None and d != fixed:
                raise ExportError(f"{what} {_dims(shape)}: dimension {axis} of this model is fixed at {fixed}")
        if shape[1] != 3:
            raise ExportError(f"{what} {_dims(shape)}: a YOLO input has 3 channels")
        if shape[2] % stride or shape[3] % stride:
            raise ExportError(f"{what} {_dims(shape)}: height and width must be multiples of the stride {stride}")
    if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
        raise ExportError(f"shapes must grow from min to opt to max in every dimension, got min {_dims(low)}, "
                          f"opt {_dims(opt)}, max {_dims(high)}")
    return low, opt, high


def _stride(metadata: dict[str, str]) -> int:
    value = metadata.get("stride", "32")
    return int(value) if value.isdigit() and int(value) > 0 else 32


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


# --- calibration -----------------------------------------------------------------------------------------------


class CalibrationBatches:
    """The calibration images as the network sees them at run time: (batch, 3, H, W) arrays of the input dtype,
    letterboxed, RGB, /255, by the runtime's own Preprocessor. Every batch has the one calibration shape (the full
    letterbox, as for a fixed-size model); a last, incomplete batch is left out. Unreadable images are skipped
    with a warning. The array yielded is reused for the next batch."""

    def __init__(self, files: Sequence[str | Path], shape: Shape, dtype: np.dtype, stride: int = 32):
        self.files = [str(f) for f in files]
        self.shape = tuple(shape)
        self._pre = Preprocessor(self.shape[2:], np.dtype(dtype), stride, dynamic=False, batch=self.shape[0])
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.files) // self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        for path in self.files:
            try:
                image = to_bgr(read_image(str(path)), str(path))
            except SourceError as e:
                log.warning("calibration: skipping %s", e)
                self.skipped.append(path)
                continue
            batch.append(image)
            if len(batch) == self.shape[0]:
                tensor, _ = self._pre(batch)
                batch = []
                yield tensor
        if batch:
            log.info("calibration: the last %d image(s) do not fill a batch of %d and are left out", len(batch),
                     self.shape[0])


def calibration_fingerprint(plan: EnginePlan, tensorrt_version_text: str) -> str:
    """Identifies what a calibration cache was made from: the ONNX file, the images, the batch shape, TensorRT."""
    digest = hashlib.sha256()
    with open(plan.onnx_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    for path in plan.calib_files:
        digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    digest.update(f"{plan.calib_shape} {plan.input_dtype} TensorRT {tensorrt_version_text}".encode())
    return digest.hexdigest()


def read_calibration_cache(path: Path, fingerprint: str) -> bytes | None:
    """The TensorRT calibration cache in `path` if it was made from the same model and images, else None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("calibration: cannot read the cache %s (%s): calibrating again", path, e.strerror or e)
        return None
    header, _, cache = data.partition(b"\n")
    if header != CALIBRATION_MAGIC + fingerprint.encode():
        log.info("calibration: %s is for another model, image set or TensorRT version: calibrating again", path.name)
        return None
    log.info("calibration: reusing %s", path)
    return cache


def write_calibration_cache(path: Path, fingerprint: str, cache: bytes) -> None:
    write_bytes(path, CALIBRATION_MAGIC + fingerprint.encode() + b"\n" + bytes(cache))


def _entropy_calibrator(trt: Any, cuda: CudaRuntime, batches: CalibrationBatches, cache: Path, fingerprint: str) -> Any:
    """An IInt8EntropyCalibrator2 that feeds `batches` to TensorRT from one device buffer.

    TensorRT calls it from C++: an exception must not cross back, so get_batch keeps it in `.error` and ends the
    calibration; the builder raises it afterwards. `.free()` releases the buffers."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.error: BaseException | None = None
            self.done = 0
            self._batches = iter(batches)
            self._stream = self._device = self._host = None

        def get_batch_size(self) -> int:
            return batches.shape[0]

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            try:
                batch = next(self._batches, None)
                if batch is None:
                    return None
                if self._device is None:
                    self._stream = cuda.stream()
                    self._device = cuda.device_buffer(batch.nbytes)
                    self._host = cuda.pinned_buffer(batch.nbytes)
                np.copyto(self._host.array[: batch.nbytes].view(batch.dtype).reshape(batch.shape), batch)
                cuda.upload(self._device, self._host, batch.nbytes, self._stream)
                cuda.synchronize(self._stream)
                self.done += 1
                log.info("calibration: batch %d/%d", self.done, len(batches))
                return [self._device.ptr]
            except BaseException as e:
                self.error = e
                return None

        def read_calibration_cache(self) -> bytes | None:
            return read_calibration_cache(cache, fingerprint)

        def write_calibration_cache(self, data: Any) -> None:
            try:
                write_calibration_cache(cache, fingerprint, bytes(data))
            except BaseException as e:
                self.error = self.error or e

        def free(self) -> None:
            for item in (self._device, self._host, self._stream):
                if item is not None:
                    cuda.free(item)
            self._stream = self._device = self._host = None

    return EntropyCalibrator()


# --- the build -------------------------------------------------------------------------------------------------


def _build(trt: Any, plan: EnginePlan) -> Path:
    logger = tensorrt_logger(trt)
    logger.verbose = plan.verbose
    logger.take_errors()
    major = tensorrt_version(trt)[0]
    try:  # without a usable GPU the constructor fails (a TypeError from a null pointer) after logging why
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as e:
        raise ExportError(f"TensorRT could not start a builder: {logger.take_errors() or e} (is there a CUDA GPU "
                          "and a driver that matches this TensorRT?)") from None
    # TensorRT 10 has explicit batch only and deprecates the flag; before 10 it must be set
    network = builder.create_network(0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {plan.onnx_path.name}: {errors or logger.take_errors()}")
    if network.num_inputs != 1:
        raise ExportError(f"TensorRT sees {network.num_inputs} inputs in {plan.onnx_path.name}; expected one")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(plan.workspace_gib * (1 << 30)))
    if plan.profile is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(plan.input_name, *plan.profile)
        config.add_optimization_profile(profile)
    if plan.half:
        if not getattr(builder, "platform_has_fast_fp16", True):  # the attribute is gone in TensorRT 10
            log.warning("this GPU has no fast FP16: the FP16 engine may be no faster than FP32")
        config.set_flag(trt.BuilderFlag.FP16)
    timing_cache = _set_timing_cache(config, plan.timing_cache)

    calibrator = None
    cuda = None
    try:
        if plan.int8:
            cuda = load_cuda(ExportError)
            fingerprint = calibration_fingerprint(plan, trt.__version__)
            batches = CalibrationBatches(plan.calib_files, plan.calib_shape, plan.input_dtype, plan.stride)
            calibrator = _entropy_calibrator(trt, cuda, batches, plan.calib_cache, fingerprint)
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            if plan.profile is not None and major < 10:
                # TensorRT 8 calibrates a dynamic network at a calibration profile; 10 takes the first profile's
                # opt shape (and its set_calibration_profile is deprecated). Batches have the opt shape either way.
                calibration = builder.create_optimization_profile()
                opt = plan.profile[1]
                calibration.set_shape(plan.input_name, opt, opt, opt)
                config.set_calibration_profile(calibration)
        log.info("building a %s TensorRT %s engine from %s (this takes minutes)", plan.precision, trt.__version__,
                 plan.onnx_path.name)
        serialized = builder.build_serialized_network(network, config)
        if calibrator is not None and calibrator.error is not None:
            error = calibrator.error
            if isinstance(error, EdgesegError):
                raise error
            raise ExportError(f"INT8 calibration failed: {type(error).__name__}: {error}") from error
        if serialized is None:
            raise ExportError(f"TensorRT could not build an engine from {plan.onnx_path.name}: "
                              f"{logger.take_errors() or 'see the TensorRT messages above'}")
    finally:
        if calibrator is not None:
            calibrator.free()

    data = bytes(serialized)
    write_bytes(plan.out, data)
    build = {
        "tensorrt": trt.__version__,
        "precision": plan.precision,
        "source": plan.onnx_path.name,
        "input": plan.input_name,
        "profile": (None if plan.profile is None
                    else dict(zip(("min", "opt", "max"), map(list, plan.profile), strict=True))),
        "workspace_gib": plan.workspace_gib,
        "calibration_images": len(plan.calib_files) if plan.int8 else None,
    }
    write_sidecar(plan.out, data, plan.metadata, build)
    if timing_cache is not None and plan.timing_cache is not None:
        write_bytes(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
    log.info("wrote %s (%.1f MB) and %s", plan.out, len(data) / 1e6, plan.out.name + ".json")
    return plan.out


def _set_timing_cache(config: Any, path: Path | None) -> Any:
    """Loads the timing cache file into the builder config (a fresh cache when there is none, or it is unusable)."""
    if path is None:
        return None
    data = path.read_bytes() if path.exists() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        log.warning("timing cache %s is unusable (another TensorRT version or GPU?): starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache

"""run_benchmark: every model on every provider (and Ultralytics, if asked) timed stage by stage, as a report."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ... import __version__
from ...config import BACKENDS, DEVICES
from ...errors import ConfigError, OutputError
from ...segmenter import Segmenter
from .machine import describe_machine
from .report import build_report, run_entry, write_report
from .stages import EdgesegStages, UltralyticsStages, measure

log = logging.getLogger(__name__)

COMPARE = ("ultralytics", "bare")
SYNTHETIC_SCENES = 8  # different seeded scenes the iterations cycle through
MAX_FRAMES = 100  # frames of an image folder or a video kept in memory
VIDEO_FRAMES = (10, 120)  # the video throughput runs over iters frames, within these bounds
BACKEND_NAMES = {"ONNX Runtime": "onnxruntime", "OpenVINO": "openvino", "TensorRT": "tensorrt"}  # by Backend.kind


class Opened(NamedTuple):
    """How an edgeseg run was opened: its model, the backend that runs it ("onnxruntime", "openvino", "tensorrt"),
    the provider asked for, and the Segmenter's keyword arguments."""

    model: str
    backend: str
    provider: str
    segmenter: dict[str, Any]


def _as_list(value: Any) -> list:
    return [value] if isinstance(value, (str, Path)) else list(value)


def check_options(models: list, providers: list, synthetic: tuple[int, int], objects: int, batch: int, warmup: int,
                  iters: int, compare: list[str], devices: Sequence[str] = ("cpu",),
                  backends: Sequence[str] = ("auto",)) -> None:
    """Raises ConfigError, with what to do, for options that cannot work; before anything slow is loaded."""
    if not models:
        raise ConfigError("give at least one model to benchmark (--model)")
    if not providers:
        raise ConfigError("give at least one provider (--providers), or auto")
    if not devices or any(d not in DEVICES for d in devices):
        raise ConfigError(f"post-processing devices must be among {', '.join(DEVICES)}, got "
                          f"{', '.join(devices) or 'none'}")
    if not backends or any(b not in BACKENDS for b in backends):
        raise ConfigError(f"backends must be among {', '.join(BACKENDS)}, got {', '.join(backends) or 'none'}")
    if iters < 1 or warmup < 0:
        raise ConfigError(f"iters must be at least 1 and warmup at least 0, got iters {iters}, warmup {warmup}")
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, got {batch}")
    if objects < 0 or len(synthetic) != 2 or min(synthetic) < 8:
        raise ConfigError(f"a synthetic scene needs a size of at least 8x8 and objects >= 0, got "
                          f"{'x'.join(map(str, synthetic))} with {objects} objects")
    for name in compare:
        if name not in COMPARE:
            raise ConfigError(f"cannot compare with {name!r}: the choices are {', '.join(COMPARE)}")
    if "ultralytics" in compare:
        missing = [m for m in ("ultralytics", "torch") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"--compare ultralytics needs {' and '.join(missing)}: pip install 'edgeseg[export]'")
    for model in models:
        if not Path(model).exists():  # a file, or Ultralytics' _openvino_model folder
            raise ConfigError(f"model file not found: {model}")


def load_frames(source: Any, synthetic: tuple[int, int], objects: int,
                count: int) -> tuple[list[np.ndarray], str, bool]:
    """(BGR frames, a description of them, whether they come from a video)."""
    from ...inputs.source import is_video_source, open_source

    if source is None:
        from ..synthetic import make_scene

        frames = [make_scene(synthetic[0], synthetic[1], objects, seed).image
                  for seed in range(min(count, SYNTHETIC_SCENES))]
        return frames, f"synthetic {synthetic[0]}x{synthetic[1]}, {objects} objects", False
    is_video = is_video_source(source)
    with open_source(source, live=False if is_video else None, strict=not is_video) as read:
        frames = [frame.image for frame in itertools.islice(read, min(count, MAX_FRAMES))]
    if not frames:
        raise ConfigError(f"no frames could be read from {source}")
    return frames, str(source), is_video


def _batches(frames: list[np.ndarray], batch: int) -> list[list[np.ndarray]]:
    """The frames in batches; too few frames for one batch are repeated to fill it."""
    if len(frames) < batch:
        frames = list(itertools.islice(itertools.cycle(frames), batch))
    return [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]


def _check_outputs(out_dir: Path, models: list[str], source: Any, dataset: Any) -> None:
    """Before anything slow: `out_dir` is a folder (or not there yet) and none of the files the report writes into
    it (benchmark.json, the plots) is one of the run's inputs: a model, a source image or video, a file of the val
    dataset. OutputError otherwise."""
    from ...inputs.images import expand_source
    from ...inputs.source import is_video_source
    from ...outputs.files import check_not_inputs
    from .plots import PLOT_FILES
    from .report import REPORT_FILE

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file; give a folder for the report and its plots")
    inputs: list[Any] = list(models)
    if source is not None:
        inputs += [source] if is_video_source(source) else expand_source(source)
    if dataset is not None:
        inputs += [dataset.yaml, *dataset.images, *(p for p in dataset.labels if p.is_file())]
    for name in (REPORT_FILE, *PLOT_FILES):
        check_not_inputs({"--out": out_dir / name}, inputs)


def runs_of(models: list[str], backends: list[str], providers: list[str],
            devices: list[str]) -> list[tuple[str, tuple[str, str], str]]:
    """(model, (backend, provider), device) for each model on each backend that takes its file (an IR runs on
    OpenVINO only, an .onnx on either: FP32 and INT8 files of each kind side by side), each provider (OpenVINO: its
    own device) and each post-processing device. ConfigError for a model no backend asked for can run."""
    from ...model.backends import backend_takes

    runs = []
    for model in models:
        takers = [b for b in backends if backend_takes(b, model)]
        if not takers:
            raise ConfigError(f"{Path(model).name} cannot run on {', '.join(backends)}: give --backends with one that "
                              "takes it (.onnx: onnxruntime or openvino; .xml or an _openvino_model folder: openvino; "
                              ".engine: tensorrt)")
        skipped = [b for b in backends if b not in takers]
        if skipped:
            log.info("edgeseg: %s runs on %s only, not on %s", Path(model).name, ", ".join(takers), ", ".join(skipped))
        on = [(b, p) for b in takers for p in (("auto",) if b == "openvino" else providers)]
        runs += [(model, pair, device) for pair, device in itertools.product(on, devices)]
    return runs


def video_throughput(model: str | Path, provider: str, imgsz: Any, frames: list[np.ndarray]) -> dict:
    """Frames per second of process_video (read, network and decoding overlapped) against predict then annotate,
    one frame after the other, on the same frames, each with the same annotator."""
    from ...config import ProviderOptions
    from ...outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
    from ..process_video import process_video

    annotator = compose(MaskAnnotator(), BoxAnnotator(), LabelAnnotator())
    providers = provider if provider == "auto" else (provider,)
    # the pipeline's stages share the cores: ONNX Runtime's threads must not spin while the others work (as the CLI)
    with Segmenter(model, imgsz=imgsz, providers=providers,
                   provider_options=ProviderOptions(cpu_spinning=False)) as seg:
        seg.warmup()
        report = process_video(seg, frames, annotator=annotator, progress=False)
    with Segmenter(model, imgsz=imgsz, providers=providers) as seg:
        seg.warmup()
        start = time.perf_counter()
        for frame in frames:
            (result,) = seg.predict(frame)
            annotator.annotate(frame, result)
        sequential = time.perf_counter() - start
    return {"frames": len(frames), "pipelined_fps": report.fps, "sequential_fps": len(frames) / sequential}


def run_benchmark(models: str | Path | Sequence[str | Path], source: Any = None,
                  synthetic: tuple[int, int] = (1280, 720), objects: int = 20, providers: Iterable[str] = ("auto",),
                  imgsz: int | tuple[int, int] | None = None, batch: int = 1, warmup: int = 20, iters: int = 200,
                  compare: Iterable[str] = (), out_dir: str | Path | None = None, video: bool = False,
                  progress: bool = True, startup: bool = True, devices: Iterable[str] = ("cpu",),
                  backends: Iterable[str] = ("auto",), val: str | Path | None = None) -> dict:
    """Times every stage of edgeseg for each model on each provider, side by side and interleaved with
    Ultralytics' predict on the same model when compare has "ultralytics", and with the network alone on its runtime
    beside each run when it has "bare" (report["overheads"]: edgeseg over it), on the same frames: `source` (images,
    a folder, a glob or a video; up to 100 frames are kept) or seeded synthetic scenes of `synthetic` (width,
    height) with `objects` shapes. Returns the report (see report.build_report); with `out_dir`, also writes
    out_dir/benchmark.json and the plots. `video`: also measure pipelined against sequential video throughput
    (always done for a video source). `startup`: also measure cold start and memory, in fresh processes (about
    half a minute; left null without). `devices`: where the post-processing runs, "cpu" and/or "cuda" (the GPU
    path), each model and provider on each. `backends`: what runs the network, each model on each ("auto": by its
    file; "onnxruntime", "openvino" side by side on an .onnx; the OpenVINO backend runs on its CPU whatever
    `providers` say). Cold start and memory are measured for each model on each backend (the first provider each;
    Numba's JIT variants and Ultralytics once per model). `val`: a data.yaml (as for `edgeseg val`); each edgeseg run
    is then also scored on it (box and mask mAP, Ultralytics' val settings), e.g. FP32 against INT8 on each backend.
    Samples are ms per frame (a batch's time divided by its frames)."""
    models = [str(m) for m in _as_list(models)]
    providers = [p.strip() for p in _as_list(providers) if p.strip()]
    devices = [d.strip().lower() for d in _as_list(devices) if d.strip()]
    compare = [c.strip().lower() for c in _as_list(compare) if c.strip()]
    backends = [b.strip().lower() for b in _as_list(backends) if b.strip()]
    synthetic = tuple(synthetic)  # type: ignore[assignment]
    check_options(models, providers, synthetic, objects, batch, warmup, iters, compare, devices, backends)
    dataset = None
    if val is not None:
        from ..val import check_names, read_dataset

        dataset, _ = read_dataset(val)  # pycocotools, the dataset's images and labels: before anything slow
    if out_dir is not None:
        _check_outputs(Path(out_dir), models, source, dataset)
    frames, description, is_video = load_frames(source, synthetic, objects, warmup + iters)

    with ExitStack() as stack:
        contenders: list = []
        opened: list[Opened] = []  # how each edgeseg contender was opened, to score it or start it afresh
        first: dict[str, EdgesegStages] = {}
        for model, (backend, provider), device in runs_of(models, backends, providers, devices):
            opening = {"model": model, "imgsz": imgsz, "providers": provider if provider == "auto" else (provider,),
                       "batch": batch, "device": device, "backend": backend}
            seg = stack.enter_context(Segmenter(**opening))
            if seg.batch_size != batch:
                raise ConfigError(f"{Path(model).name} takes batches of exactly {seg.batch_size}; batch {batch} is not "
                                  f"possible (use --batch {seg.batch_size}, or a model exported with dynamic=True)")
            if dataset is not None:
                check_names(seg, dataset)  # a model for other classes fails now, not after the timing
            seg.warmup()  # compiles (or loads) the Numba kernels before any timing
            contenders.append(EdgesegStages(seg))
            opened.append(Opened(model, BACKEND_NAMES.get(seg.backend.kind, seg.backend.kind), provider, opening))
            first.setdefault(model, contenders[-1])
        if "bare" in compare:
            contenders += _bare_contenders(contenders[:len(opened)], opened)
        if "ultralytics" in compare:
            for model, reference in first.items():
                on_cpu = reference.provider in ("CPUExecutionProvider", "OpenVINO:CPU")
                on_gpu = not on_cpu or reference.device == "cuda"
                device = "cuda:0" if on_gpu else "cpu"
                contenders.append(UltralyticsStages(model, reference.seg, device))
        resolved_imgsz = list(contenders[0].seg.imgsz) if imgsz is not None else None
        records = measure(contenders, _batches(frames, batch), iters, warmup, progress)

    runs = [run_entry(c, r) for c, r in zip(contenders, records, strict=True)]
    if val is not None:
        for run, how in zip(runs[:len(opened)], opened, strict=True):  # edgeseg's runs come first
            run["accuracy"] = score_run(how.segmenter, val)
    video_result = None
    if video or is_video:
        count = min(max(iters, VIDEO_FRAMES[0]), VIDEO_FRAMES[1])
        if is_video:
            clip = list(itertools.islice(itertools.cycle(frames), count))
        else:
            from ..synthetic import panning_frames

            clip = list(panning_frames(synthetic[0], synthetic[1], objects, count))
        video_result = video_throughput(models[0], providers[0], imgsz, clip)

    settings = {"models": models, "providers": providers, "backends": backends, "devices": devices,
                "source": description, "frames": len(frames), "imgsz": resolved_imgsz, "batch": batch,
                "warmup": warmup, "iters": iters, "compare": compare, "val": str(val) if val is not None else None}
    report = build_report(__version__, describe_machine(), settings, runs, video_result)
    if startup:
        _add_startup_and_memory(report, opened, iters, frames[0])
    if out_dir is not None:
        report["plots"] = _write_plots(report, Path(out_dir))
        path = write_report(report, out_dir)
        log.info("report in %s", path)
    return report


def _add_startup_and_memory(report: dict, opened: list[Opened], frames: int, image: np.ndarray) -> None:
    """Cold start and peak memory, each measured in fresh processes (edgeseg.app.benchmark.startup), for each model
    on each backend it ran on (its first provider there): Numba's JIT variants only for the first (the kernels are
    the same whatever runs the network), Ultralytics once per model (it runs a file on its own choice of runtime).
    A TensorRT run has no bare floor to compare with: it is left out, with a warning."""
    from .startup import STARTUP_BACKENDS, measure_cold_start, measure_memory

    report["cold_start"], report["memory"] = [], []
    measured: set[tuple[str, str]] = set()
    models_done: set[str] = set()
    for how in opened:
        model, backend = how.model, how.backend
        if (model, backend) in measured:
            continue
        measured.add((model, backend))
        if backend not in STARTUP_BACKENDS:
            log.warning("edgeseg: no cold start or memory for %s on %s: measured against a bare ONNX Runtime or "
                        "OpenVINO run only", Path(model).name, backend)
            continue
        with_ultralytics = model not in models_done
        models_done.add(model)
        common = {"provider": how.provider, "image": image, "backend": backend,
                  "ultralytics": with_ultralytics}
        report["cold_start"].append(measure_cold_start(model, jit=len(report["cold_start"]) == 0, **common))
        report["memory"].append(measure_memory(model, frames=frames, **common))
    report["cold_start"] = report["cold_start"] or None
    report["memory"] = report["memory"] or None


def _bare_contenders(edgeseg: list[EdgesegStages], opened: list[Opened]) -> list:
    """The bare runtime beside each model on each backend and provider edgeseg ran it on (once, whatever device
    the post-processing ran on); a TensorRT engine has none here: left out, with a warning."""
    from .bare import BareStages
    from .startup import STARTUP_BACKENDS, make_target

    bare, seen = [], set()
    for contender, how in zip(edgeseg, opened, strict=True):
        key = (how.model, how.backend, contender.provider)
        if key in seen:
            continue
        seen.add(key)
        if how.backend not in STARTUP_BACKENDS:
            log.warning("edgeseg: no bare run beside %s on %s: measured for ONNX Runtime and OpenVINO only",
                        Path(how.model).name, how.backend)
            continue
        target = make_target(how.model, how.provider, how.backend)
        bare.append(BareStages(contender.seg, target))
    return bare


def score_run(segmenter: dict[str, Any], data: str | Path) -> dict[str, Any]:
    """Box and mask mAP on a labelled dataset of a Segmenter opened with `segmenter` (an edgeseg run's model,
    backend, provider and device) and Ultralytics' val settings, as edgeseg val scores it."""
    from ..val import VAL_SETTINGS, validate

    with Segmenter(**segmenter, **VAL_SETTINGS) as seg:
        report = validate(seg, data, progress=False)
    return {"box_map50": report.box_map50, "box_map50_95": report.box_map50_95, "mask_map50": report.mask_map50,
            "mask_map50_95": report.mask_map50_95, "images": report.images, "instances": report.instances}


def _write_plots(report: dict, out_dir: Path) -> list[str]:
    if importlib.util.find_spec("matplotlib") is None:
        log.info("no plots: matplotlib is not installed (pip install 'edgeseg[plots]')")
        return []
    from .plots import write_plots

    return [str(p) for p in write_plots(report, out_dir)]

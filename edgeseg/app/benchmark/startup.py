"""Cold start and memory of a fresh process: edgeseg against the bare runtime that runs its network (an ONNX Runtime
session or an OpenVINO compiled model) and Ultralytics.

Every number comes from a new interpreter (`sys.executable -c SCRIPT ARGS`), because what is measured — imports,
session creation, loading or compiling the kernels, the first frame — happens once per process.

Cold start is wall time from just before the parent spawns the child (`time.time()`) to the child's `time.time()`
after its first result: interpreter start-up, imports, model load and the first frame are all inside, as a user
launching a script sees them. The child also reports its own split (imports, setup, first frame) from its first line,
which shows where the time goes. Both clocks are the same wall clock of one machine, so their difference is valid;
the OS file cache is warm after the first repeat (the "cold" here is a cold process, not a cold disk).

edgeseg runs three ways: as installed (its kernels compiled ahead of time, when the install built them), and with
EDGESEG_KERNELS=jit, where Numba compiles the kernels: "warm cache" means NUMBA_CACHE_DIR points at a folder an
earlier run filled, so the kernels are loaded, not compiled; "cold cache" means a fresh empty folder.

The bare floor is the backend edgeseg runs the model on: for ONNX Runtime an InferenceSession with edgeseg's graph
optimisation level; for OpenVINO core.compile_model with the properties edgeseg's backend passes (latency hint, f32
on the CPU), on the same device. TensorRT engines have no bare child here (they need a GPU this code never ran on).

Memory is the peak resident size of each child (VmHWM) twice: right after its first result, and after `frames`
frames, because ONNX Runtime's own session grows on its second run (it plans its buffers on the first).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, EdgesegError

RESULT_TAG = "EDGESEG_BENCH_RESULT "

# Shared by every child: argument parsing, the result line, peak and current resident memory.
_PRELUDE = r"""
import time
_t0 = time.perf_counter()
import json, sys
args = json.loads(sys.argv[1])

def peak_mib():
    # Linux keeps ru_maxrss across fork + exec, so a child of a big parent (a test run holding PyTorch) would
    # report the parent's peak; VmHWM belongs to this process's own address space
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere

def rss_mib():
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        try:
            import psutil
        except ImportError:
            return None
        return psutil.Process().memory_info().rss / 2**20

def check_lean():
    sneaked = [m for m in ("torch", "ultralytics") if m in sys.modules]
    if sneaked:
        raise SystemExit("lean child imported " + ", ".join(sneaked))

def report(**values):
    values["end_time"] = time.time()
    values["peak_mib"] = peak_mib()
    values.setdefault("peak_first_mib", values["peak_mib"])
    print("EDGESEG_BENCH_RESULT " + json.dumps(values), flush=True)
"""

_BARE = _PRELUDE + r"""
import numpy as np
import onnxruntime as ort
t_import = time.perf_counter()
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as edgeseg's backend
providers = [tuple(p) if isinstance(p, list) else p for p in args["providers"]]
session = ort.InferenceSession(args["model"], options, providers=providers)
inp = session.get_inputs()[0]
shape = [d if isinstance(d, int) else default for d, default in zip(inp.shape, (1, 3, 640, 640))]
dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
t_setup = time.perf_counter()
feed = {inp.name: np.zeros(shape, dtype)}
session.run(None, feed)
t_first, peak_first = time.perf_counter(), peak_mib()
for _ in range(1, args.get("frames", 1)):
    session.run(None, feed)
check_lean()
report(import_s=t_import - _t0, setup_s=t_setup - t_import, first_s=t_first - t_setup, input_shape=shape,
       peak_first_mib=peak_first)
"""

_BARE_OPENVINO = _PRELUDE + r"""
import numpy as np
import openvino as ov
t_import = time.perf_counter()
core = ov.Core()
compiled = core.compile_model(core.read_model(args["model"], args["weights"]), args["device"], args["config"])
port = compiled.inputs[0]
shape = [d.get_length() if d.is_static else default for d, default in zip(port.get_partial_shape(), (1, 3, 640, 640))]
dtype = np.float16 if port.get_element_type() == ov.Type.f16 else np.float32
request = compiled.create_infer_request()
t_setup = time.perf_counter()
feed = np.zeros(shape, dtype)
request.infer({0: feed})
t_first, peak_first = time.perf_counter(), peak_mib()
for _ in range(1, args.get("frames", 1)):
    request.infer({0: feed})
check_lean()
report(import_s=t_import - _t0, setup_s=t_setup - t_import, first_s=t_first - t_setup, input_shape=shape,
       peak_first_mib=peak_first)
"""

_EDGESEG = _PRELUDE + r"""
import numpy as np
from edgeseg import Segmenter
t_import = time.perf_counter()
image = np.load(args["image"])
seg = Segmenter(args["model"], providers=args["providers"], backend=args["backend"])
t_setup = time.perf_counter()
found = len(seg.predict(image)[0])
t_first, peak_first = time.perf_counter(), peak_mib()
from edgeseg.kernels.jit import MODE
numba_loaded = "numba" in sys.modules
frames, warmup = args.get("frames", 1), args.get("warmup", 0)
rss_warm = rss_mib()
for i in range(1, frames):
    seg.predict(image)
    if i + 1 == warmup:
        rss_warm = rss_mib()
rss_end = rss_mib()
check_lean()
report(import_s=t_import - _t0, setup_s=t_setup - t_import, first_s=t_first - t_setup, objects=found,
       rss_warm_mib=rss_warm, rss_end_mib=rss_end, peak_first_mib=peak_first, kernels=MODE,
       numba_loaded=numba_loaded)
"""

_ULTRALYTICS = _PRELUDE + r"""
import numpy as np
from ultralytics import YOLO
t_import = time.perf_counter()
image = np.load(args["image"])
model = YOLO(args["model"], task="segment")
t_setup = time.perf_counter()
kwargs = dict(imgsz=args["imgsz"], device=args["device"], verbose=False)
found = len(model.predict(image, **kwargs)[0])
t_first, peak_first = time.perf_counter(), peak_mib()
for _ in range(1, args.get("frames", 1)):
    model.predict(image, **kwargs)
report(import_s=t_import - _t0, setup_s=t_setup - t_import, first_s=t_first - t_setup, objects=found,
       peak_first_mib=peak_first)
"""


MIN_GROWTH_FRAMES = 50  # frames after the warm-up below which no growth rate is reported


def ultralytics_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("ultralytics") is not None


def _run_child(name: str, script: str, args: dict[str, Any], env: dict[str, str] | None = None,
               timeout: float = 600.0) -> dict[str, Any]:
    """Runs `script` in a fresh interpreter; returns its result dict plus `wall_s` (spawn to first result)."""
    start = time.time()
    try:
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgesegError(f"benchmark child '{name}' did not finish within {timeout:.0f} s") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        stderr = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = stderr[-1] if stderr else f"exit code {proc.returncode}, no output"
        raise EdgesegError(f"benchmark child '{name}' failed: {last}")
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["wall_s"] = result["end_time"] - start
    return result


STARTUP_BACKENDS = ("onnxruntime", "openvino")  # the backends with a bare child


@dataclass(frozen=True)
class Target:
    """A model on one backend as the children run it: what edgeseg's Segmenter is given, and the bare child (the
    floor: the backend alone, created and run as edgeseg's backend does) with its arguments."""

    path: Path
    backend: str
    provider: str
    segmenter: dict[str, Any]
    bare_script: str
    bare_args: dict[str, Any]

    @property
    def bare_name(self) -> str:
        return "bare onnxruntime session" if self.backend == "onnxruntime" else "bare OpenVINO compiled model"


def startup_backend(model: str | Path, backend: str = "auto", provider: str = "auto") -> str:
    """The backend a Segmenter runs `model` on ("onnxruntime" or "openvino"), as open_backend picks it; ConfigError
    for a TensorRT engine (no bare child measures one) or a backend that cannot take the file."""
    path = Path(model)
    from ...model.backends.openvino_files import is_openvino_model

    if backend == "auto":
        on_openvino = is_openvino_model(path) or str(provider).lower().startswith("openvino:")
        backend = "openvino" if on_openvino else "onnxruntime" if path.suffix.lower() == ".onnx" else "tensorrt"
    if backend not in STARTUP_BACKENDS:
        raise ConfigError(f"cold start and memory are measured against a bare ONNX Runtime or OpenVINO run; "
                          f"{path.name} runs on {backend} (measure it with --no-startup)")
    return backend


def make_target(model: str | Path, provider: str = "auto", backend: str = "auto") -> Target:
    """The children's arguments for `model` on `backend` ("auto": by the file, as open_backend) and `provider`."""
    from ...config import ProviderOptions

    path = Path(model)
    backend = startup_backend(path, backend, provider)
    request = "auto" if provider == "auto" else [provider]
    if backend == "onnxruntime":
        import onnxruntime as ort

        from ...model.backends.onnxruntime import resolve_providers

        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        bare = {"model": str(path.resolve()), "providers": resolve_providers(request, ort.get_available_providers())}
        script = _BARE
    else:
        from ...errors import ModelFormatError, ModelNotFoundError
        from ...model.backends.openvino import compile_config, resolve_device
        from ...model.backends.openvino_files import find_files

        try:
            files = find_files(path)
        except (ModelNotFoundError, ModelFormatError) as e:
            raise ConfigError(str(e)) from None
        device = resolve_device(request, ProviderOptions(), path.name)
        bare = {"model": str(files.model.resolve()), "weights": str(files.weights.resolve()) if files.weights else None,
                "device": device, "config": compile_config(device, ProviderOptions())}
        script = _BARE_OPENVINO
    segmenter = {"model": str(path.resolve()), "providers": provider, "backend": backend}
    return Target(path.resolve(), backend, provider, segmenter, script, bare)


def _ultralytics_device(provider: str) -> Any:
    name, _, index = provider.lower().partition(":")
    if name in ("cuda", "gpu", "tensorrt", "trt", "cudaexecutionprovider", "tensorrtexecutionprovider"):
        return int(index) if index.isdigit() else 0
    return "cpu" if name != "auto" else None


def _check_count(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")


def _save_image(image: np.ndarray | str | Path | None, folder: Path) -> Path:
    """The frame every child predicts on, as .npy (loading it needs no image codec in the bare child)."""
    if image is None:
        from ..synthetic import make_scene

        image = make_scene(640, 480, 8).image  # objects in the frame: NMS, masks and contours all run
    elif not isinstance(image, np.ndarray):
        import cv2

        loaded = cv2.imread(str(image))
        if loaded is None:
            raise ConfigError(f"cannot read the benchmark image {image}")
        image = loaded
    path = folder / "frame.npy"
    np.save(path, np.ascontiguousarray(image))
    return path


def _median(samples: list[float]) -> float:
    return float(statistics.median(samples))


def measure_cold_start(model: str | Path, provider: str = "auto", repeats: int = 3,
                       image: np.ndarray | str | Path | None = None, backend: str = "auto", jit: bool = True,
                       ultralytics: bool | None = None) -> dict[str, Any]:
    """Seconds from spawning a fresh process to its first result, median of `repeats` runs each:
    bare_session_s (import the runtime, create the session or compiled model, one run on zeros: the floor;
    `bare` names it), edgeseg_s (Segmenter + predict on a frame with objects, as installed: `kernels` says whether
    the kernels were compiled ahead of time, "aot", or by Numba, "jit"), edgeseg_jit_warm_cache_s and
    edgeseg_jit_cold_cache_s (EDGESEG_KERNELS=jit, with Numba's cache filled by an earlier run, or empty: compilation
    included; None with jit=False: the kernels are the same whatever runs the network), ultralytics_s
    (YOLO(model).predict, on whatever Ultralytics runs that file with; None when not installed or ultralytics=False).
    `backend`: what runs the network, "onnxruntime" or "openvino" ("auto": by the file). `samples` keeps every run
    with the child's own split (import_s, setup_s, first_s); `cold_cache_files` counts the files each cold run left in
    its empty cache (0 would mean nothing compiled).
    """
    _check_count(repeats, "repeats")
    target = make_target(model, provider, backend)
    with_ultralytics = ultralytics_installed() if ultralytics is None else ultralytics and ultralytics_installed()
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (
        "bare_session", "edgeseg", "edgeseg_jit_warm_cache", "edgeseg_jit_cold_cache", "ultralytics")}
    cold_files: list[int] = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-coldstart-") as tmp:
        work = Path(tmp)
        frame = _save_image(image, work)
        warm_cache = work / "numba-warm"
        warm_cache.mkdir()
        seg_args = {**target.segmenter, "image": str(frame)}
        # Runs interleave kind by kind so that a busy spell of the machine spreads over all of them.
        for i in range(repeats):
            samples["bare_session"].append(_run_child(target.bare_name, target.bare_script, target.bare_args))
            if jit:
                cold_cache = work / f"numba-cold-{i}"
                cold_cache.mkdir()
                samples["edgeseg_jit_cold_cache"].append(_run_child(
                    "edgeseg, JIT, empty Numba cache", _EDGESEG, seg_args,
                    {"NUMBA_CACHE_DIR": str(cold_cache), "EDGESEG_KERNELS": "jit"}))
                cold_files.append(sum(1 for p in cold_cache.rglob("*") if p.is_file()))
                if i == 0:  # the first cold run's compiled kernels are the warm cache from here on
                    shutil.copytree(cold_cache, warm_cache, dirs_exist_ok=True)
                samples["edgeseg_jit_warm_cache"].append(_run_child(
                    "edgeseg, JIT, warm Numba cache", _EDGESEG, seg_args,
                    {"NUMBA_CACHE_DIR": str(warm_cache), "EDGESEG_KERNELS": "jit"}))
                shutil.rmtree(cold_cache, ignore_errors=True)
            # as installed; should that be the JIT (no compiled kernels), it finds Numba's cache warm
            samples["edgeseg"].append(_run_child("edgeseg", _EDGESEG, seg_args, {"NUMBA_CACHE_DIR": str(warm_cache)}))
            if with_ultralytics:
                imgsz = samples["bare_session"][0]["input_shape"][2:]
                samples["ultralytics"].append(_run_child(
                    "ultralytics", _ULTRALYTICS, {"model": str(target.path), "image": str(frame), "imgsz": imgsz,
                                                  "device": _ultralytics_device(provider)}, {"YOLO_OFFLINE": "1"}))
    medians = {kind: _median([s["wall_s"] for s in runs]) if runs else None for kind, runs in samples.items()}
    bare = medians["bare_session"]

    def ratio(kind: str) -> float | None:
        return medians[kind] / bare if medians[kind] is not None else None

    return {
        "model": target.path.name,
        "backend": target.backend,
        "provider": provider,
        "bare": target.bare_name,
        "kernels": samples["edgeseg"][0]["kernels"],
        "bare_session_s": bare,
        "edgeseg_s": medians["edgeseg"],
        "edgeseg_jit_warm_cache_s": medians["edgeseg_jit_warm_cache"],
        "edgeseg_jit_cold_cache_s": medians["edgeseg_jit_cold_cache"],
        "ultralytics_s": medians["ultralytics"],
        "ratio_to_bare": ratio("edgeseg"),
        "ratio_jit_warm_to_bare": ratio("edgeseg_jit_warm_cache"),
        "ratio_jit_cold_to_bare": ratio("edgeseg_jit_cold_cache"),
        "ratio_ultralytics_to_bare": ratio("ultralytics"),
        "cold_cache_files": cold_files,
        "samples": {kind: [{k: v for k, v in s.items() if k != "end_time"} for s in runs] if runs else None
                    for kind, runs in samples.items()},
        "repeats": repeats,
    }


def measure_memory(model: str | Path, provider: str = "auto", frames: int = 300,
                   image: np.ndarray | str | Path | None = None, backend: str = "auto",
                   ultralytics: bool | None = None) -> dict[str, Any]:
    """Peak resident memory (MiB, VmHWM) of a fresh process each, edgeseg as installed (`kernels`: "aot" or "jit";
    for the JIT, Numba's cache is filled by an earlier run first, so the compiler's memory is not counted):
    bare_session_peak_mib (the backend alone, `bare` names it), edgeseg_peak_mib, ultralytics_peak_mib (None without
    Ultralytics or with ultralytics=False) right after the first result (the bare run: created and run once, the
    floor), and *_long_peak_mib after `frames` frames (the bare run repeated as often); ratio_to_bare and
    ratio_long_to_bare compare edgeseg with the bare run at each point. `backend` as for measure_cold_start.
    edgeseg_growth_mib_per_1000_frames: resident memory after all frames minus after a warm-up (a tenth of the frames,
    at least one), per 1000 frames after the warm-up; a leak shows as a steady positive number. None where neither
    /proc nor psutil can read the resident size, or over fewer than MIN_GROWTH_FRAMES frames.
    """
    _check_count(frames, "frames")
    target = make_target(model, provider, backend)
    with_ultralytics = ultralytics_installed() if ultralytics is None else ultralytics and ultralytics_installed()
    warmup = max(1, frames // 10)
    with tempfile.TemporaryDirectory(prefix="edgeseg-memory-") as tmp:
        work = Path(tmp)
        frame = _save_image(image, work)
        cache = {"NUMBA_CACHE_DIR": str(work / "numba")}
        seg_args = {**target.segmenter, "image": str(frame)}
        _run_child("edgeseg, filling the Numba cache", _EDGESEG, seg_args, cache)
        bare = _run_child(target.bare_name, target.bare_script, {**target.bare_args, "frames": frames})
        seg = _run_child("edgeseg", _EDGESEG, {**seg_args, "frames": frames, "warmup": warmup}, cache)
        ultra = None
        if with_ultralytics:
            ultra = _run_child("ultralytics", _ULTRALYTICS,
                               {"model": str(target.path), "image": str(frame), "imgsz": bare["input_shape"][2:],
                                "device": _ultralytics_device(provider), "frames": frames}, {"YOLO_OFFLINE": "1"})
    growth = None
    # a rate over a handful of frames is one page fault scaled up a hundredfold: say nothing rather than that
    if seg["rss_warm_mib"] is not None and seg["rss_end_mib"] is not None and frames - warmup >= MIN_GROWTH_FRAMES:
        growth = (seg["rss_end_mib"] - seg["rss_warm_mib"]) / (frames - warmup) * 1000
    return {
        "model": target.path.name,
        "backend": target.backend,
        "provider": provider,
        "bare": target.bare_name,
        "kernels": seg["kernels"],
        "bare_session_peak_mib": bare["peak_first_mib"],
        "edgeseg_peak_mib": seg["peak_first_mib"],
        "ultralytics_peak_mib": ultra["peak_first_mib"] if ultra else None,
        "ratio_to_bare": seg["peak_first_mib"] / bare["peak_first_mib"],
        "bare_session_long_peak_mib": bare["peak_mib"],
        "edgeseg_long_peak_mib": seg["peak_mib"],
        "ultralytics_long_peak_mib": ultra["peak_mib"] if ultra else None,
        "ratio_long_to_bare": seg["peak_mib"] / bare["peak_mib"],
        "ratio_ultralytics_to_bare": ultra["peak_first_mib"] / bare["peak_first_mib"] if ultra else None,
        "edgeseg_rss_after_warmup_mib": seg["rss_warm_mib"],
        "edgeseg_rss_end_mib": seg["rss_end_mib"],
        "edgeseg_growth_mib_per_1000_frames": growth,
        "warmup_frames": warmup,
        "frames": frames,
    }

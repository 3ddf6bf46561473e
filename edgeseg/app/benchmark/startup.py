"""Cold start and memory of a fresh process: edgeseg against a bare ONNX Runtime session and Ultralytics.

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

_EDGESEG = _PRELUDE + r"""
import numpy as np
from edgeseg import Segmenter
t_import = time.perf_counter()
image = np.load(args["image"])
seg = Segmenter(args["model"], providers=args["providers"])
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


def _onnx_providers(provider: str) -> tuple[Any, list[Any]]:
    """What edgeseg's Segmenter gets for `provider`, and the onnxruntime providers list it resolves to."""
    import onnxruntime as ort

    from ...model.backends.onnxruntime import resolve_providers

    request = "auto" if provider == "auto" else [provider]
    return provider, resolve_providers(request, ort.get_available_providers())


def _ultralytics_device(provider: str) -> Any:
    name, _, index = provider.lower().partition(":")
    if name in ("cuda", "gpu", "tensorrt", "trt", "cudaexecutionprovider", "tensorrtexecutionprovider"):
        return int(index) if index.isdigit() else 0
    return "cpu" if name != "auto" else None


def _check(model: str | Path, repeats: int, name: str) -> Path:
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {repeats!r}")
    return path.resolve()


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
                       image: np.ndarray | str | Path | None = None) -> dict[str, Any]:
    """Seconds from spawning a fresh process to its first result, median of `repeats` runs each:
    bare_session_s (import onnxruntime, create the session, one run on zeros: the floor), edgeseg_s (Segmenter +
    predict on a frame with objects, as installed: `kernels` says whether the kernels were compiled ahead of time,
    "aot", or by Numba, "jit"), edgeseg_jit_warm_cache_s and edgeseg_jit_cold_cache_s (EDGESEG_KERNELS=jit, with
    Numba's cache filled by an earlier run, or empty: compilation included), ultralytics_s (YOLO(model).predict;
    None when Ultralytics is not installed). `samples` keeps every run with the child's own split (import_s,
    setup_s, first_s); `cold_cache_files` counts the files each cold run left in its empty cache (0 would mean
    nothing compiled).
    """
    path = _check(model, repeats, "repeats")
    seg_providers, ort_providers = _onnx_providers(provider)
    with_ultralytics = ultralytics_installed()
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (
        "bare_session", "edgeseg", "edgeseg_jit_warm_cache", "edgeseg_jit_cold_cache", "ultralytics")}
    cold_files: list[int] = []
    with tempfile.TemporaryDirectory(prefix="edgeseg-coldstart-") as tmp:
        work = Path(tmp)
        frame = _save_image(image, work)
        warm_cache = work / "numba-warm"
        seg_args = {"model": str(path), "providers": seg_providers, "image": str(frame)}
        # Runs interleave kind by kind so that a busy spell of the machine spreads over all of them.
        for i in range(repeats):
            samples["bare_session"].append(
                _run_child("bare session", _BARE, {"model": str(path), "providers": ort_providers}))
            cold_cache = work / f"numba-cold-{i}"
            cold_cache.mkdir()
            samples["edgeseg_jit_cold_cache"].append(_run_child(
                "edgeseg, JIT, empty Numba cache", _EDGESEG, seg_args,
                {"NUMBA_CACHE_DIR": str(cold_cache), "EDGESEG_KERNELS": "jit"}))
            cold_files.append(sum(1 for p in cold_cache.rglob("*") if p.is_file()))
            if i == 0:  # the first cold run's compiled kernels are the warm cache from here on
                shutil.copytree(cold_cache, warm_cache)
            samples["edgeseg_jit_warm_cache"].append(_run_child(
                "edgeseg, JIT, warm Numba cache", _EDGESEG, seg_args,
                {"NUMBA_CACHE_DIR": str(warm_cache), "EDGESEG_KERNELS": "jit"}))
            # as installed; should that be the JIT (no compiled kernels), it finds Numba's cache warm
            samples["edgeseg"].append(_run_child("edgeseg", _EDGESEG, seg_args, {"NUMBA_CACHE_DIR": str(warm_cache)}))
            shutil.rmtree(cold_cache, ignore_errors=True)
            if with_ultralytics:
                imgsz = samples["bare_session"][0]["input_shape"][2:]
                samples["ultralytics"].append(_run_child(
                    "ultralytics", _ULTRALYTICS, {"model": str(path), "image": str(frame), "imgsz": imgsz,
                                                  "device": _ultralytics_device(provider)}, {"YOLO_OFFLINE": "1"}))
    medians = {kind: _median([s["wall_s"] for s in runs]) if runs else None for kind, runs in samples.items()}
    bare = medians["bare_session"]
    return {
        "model": path.name,
        "provider": provider,
        "kernels": samples["edgeseg"][0]["kernels"],
        "bare_session_s": bare,
        "edgeseg_s": medians["edgeseg"],
        "edgeseg_jit_warm_cache_s": medians["edgeseg_jit_warm_cache"],
        "edgeseg_jit_cold_cache_s": medians["edgeseg_jit_cold_cache"],
        "ultralytics_s": medians["ultralytics"],
        "ratio_to_bare": medians["edgeseg"] / bare,
        "ratio_jit_warm_to_bare": medians["edgeseg_jit_warm_cache"] / bare,
        "ratio_jit_cold_to_bare": medians["edgeseg_jit_cold_cache"] / bare,
        "ratio_ultralytics_to_bare": medians["ultralytics"] / bare if medians["ultralytics"] is not None else None,
        "cold_cache_files": cold_files,
        "samples": {kind: [{k: v for k, v in s.items() if k != "end_time"} for s in runs] if runs else None
                    for kind, runs in samples.items()},
        "repeats": repeats,
    }


def measure_memory(model: str | Path, provider: str = "auto", frames: int = 300,
                   image: np.ndarray | str | Path | None = None) -> dict[str, Any]:
    """Peak resident memory (MiB, VmHWM) of a fresh process each, edgeseg as installed (`kernels`: "aot" or "jit";
    for the JIT, Numba's cache is filled by an earlier run first, so the compiler's memory is not counted):
    bare_session_peak_mib, edgeseg_peak_mib, ultralytics_peak_mib (None without Ultralytics) right after the first
    result (the bare session: created and run once, the floor), and *_long_peak_mib after `frames` frames (the bare
    session run as often); ratio_to_bare and ratio_long_to_bare compare edgeseg with the bare session at each point.
    edgeseg_growth_mib_per_1000_frames: resident memory after all frames minus after a warm-up (a tenth of the frames,
    at least one), per 1000 frames after the warm-up; a leak shows as a steady positive number. None where neither
    /proc nor psutil can read the resident size, or over fewer than MIN_GROWTH_FRAMES frames.
    """
    path = _check(model, frames, "frames")
    seg_providers, ort_providers = _onnx_providers(provider)
    warmup = max(1, frames // 10)
    with tempfile.TemporaryDirectory(prefix="edgeseg-memory-") as tmp:
        work = Path(tmp)
        frame = _save_image(image, work)
        cache = {"NUMBA_CACHE_DIR": str(work / "numba")}
        seg_args = {"model": str(path), "providers": seg_providers, "image": str(frame)}
        _run_child("edgeseg, filling the Numba cache", _EDGESEG, seg_args, cache)
        bare = _run_child("bare session", _BARE, {"model": str(path), "providers": ort_providers, "frames": frames})
        seg = _run_child("edgeseg", _EDGESEG, {**seg_args, "frames": frames, "warmup": warmup}, cache)
        ultra = None
        if ultralytics_installed():
            ultra = _run_child("ultralytics", _ULTRALYTICS,
                               {"model": str(path), "image": str(frame), "imgsz": bare["input_shape"][2:],
                                "device": _ultralytics_device(provider), "frames": frames}, {"YOLO_OFFLINE": "1"})
    growth = None
    # a rate over a handful of frames is one page fault scaled up a hundredfold: say nothing rather than that
    if seg["rss_warm_mib"] is not None and seg["rss_end_mib"] is not None and frames - warmup >= MIN_GROWTH_FRAMES:
        growth = (seg["rss_end_mib"] - seg["rss_warm_mib"]) / (frames - warmup) * 1000
    return {
        "model": path.name,
        "provider": provider,
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

"""edgeseg.app.benchmark.startup (cold start and memory in fresh processes) and edgeseg.app.benchmark.plots."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from edgeseg.app.benchmark import startup
from edgeseg.app.benchmark.plots import write_plots
from edgeseg.app.synthetic import make_scene
from edgeseg.errors import ConfigError, EdgesegError

COLD_KEYS = {"model", "backend", "bare",
             "bare_session_s", "edgeseg_s", "edgeseg_jit_warm_cache_s", "edgeseg_jit_cold_cache_s", "ultralytics_s",
             "ratio_to_bare", "ratio_jit_warm_to_bare", "kernels", "samples", "repeats", "cold_cache_files"}
MEMORY_KEYS = {"model", "backend", "bare",
               "bare_session_peak_mib", "edgeseg_peak_mib", "ultralytics_peak_mib", "ratio_to_bare", "kernels",
               "bare_session_long_peak_mib", "edgeseg_long_peak_mib", "ultralytics_long_peak_mib", "ratio_long_to_bare",
               "edgeseg_growth_mib_per_1000_frames", "frames"}
EDGESEG_KINDS = ("edgeseg", "edgeseg_jit_warm_cache", "edgeseg_jit_cold_cache")


@pytest.fixture(scope="module")
def cold_start(shapes_onnx):
    return startup.measure_cold_start(shapes_onnx, provider="cpu", repeats=1)


def test_cold_start_times_every_kind_in_a_fresh_process(cold_start):
    assert COLD_KEYS <= cold_start.keys()
    assert cold_start["repeats"] == 1
    assert (cold_start["backend"], cold_start["bare"]) == ("onnxruntime", "bare onnxruntime session")
    for kind in ("bare_session", *EDGESEG_KINDS):
        assert 0 < cold_start[f"{kind}_s"] < 120, kind
    assert cold_start["ratio_to_bare"] > 0 and cold_start["ratio_jit_warm_to_bare"] > 0
    for kind in ("bare_session", *EDGESEG_KINDS):
        (sample,) = cold_start["samples"][kind]
        assert sample["wall_s"] == cold_start[f"{kind}_s"]
        # the child's own split is inside the parent's spawn-to-result time (which adds interpreter start-up)
        assert 0 < sample["import_s"] + sample["setup_s"] + sample["first_s"] < sample["wall_s"]
    for kind in EDGESEG_KINDS:
        assert cold_start["samples"][kind][0]["objects"] > 0, kind  # every kernel ran: objects were found
    if startup.ultralytics_installed():
        assert cold_start["ultralytics_s"] > 0
    else:
        assert cold_start["ultralytics_s"] is None and cold_start["samples"]["ultralytics"] is None


def test_cold_start_empty_cache_compiles(cold_start):
    # the empty cache was filled by that run: it compiled, and the warm runs had kernels to load
    assert cold_start["cold_cache_files"][0] > 0
    for kind in ("edgeseg_jit_cold_cache", "edgeseg_jit_warm_cache"):
        (sample,) = cold_start["samples"][kind]
        assert sample["kernels"] == "jit" and sample["numba_loaded"], kind


def test_cold_start_as_installed_runs_without_numba(cold_start):
    # the install compiled the kernels ahead of time (setup.py): the first result never imports Numba
    (sample,) = cold_start["samples"]["edgeseg"]
    assert cold_start["kernels"] == sample["kernels"] == "aot"
    assert not sample["numba_loaded"]


def test_lean_child_fails_loudly_when_torch_sneaks_in():
    script = startup._PRELUDE + "import torch\ncheck_lean()\nreport()\n"
    with pytest.raises(EdgesegError, match="lean child imported torch"):
        startup._run_child("lean check", script, {})


def test_child_failure_names_the_last_stderr_line():
    with pytest.raises(EdgesegError, match="benchmark child 'broken' failed: ZeroDivisionError"):
        startup._run_child("broken", startup._PRELUDE + "1 / 0\n", {})


def test_bad_arguments_are_config_errors(shapes_onnx, tmp_path):
    with pytest.raises(ConfigError, match="model file not found"):
        startup.measure_cold_start(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="model file not found"):
        startup.measure_cold_start(tmp_path / "missing.onnx", backend="openvino")
    with pytest.raises(ConfigError, match="frames"):
        startup.measure_memory(shapes_onnx, frames=0)
    with pytest.raises(ConfigError, match="m.engine runs on tensorrt"):  # no bare TensorRT child
        startup.measure_cold_start(tmp_path / "m.engine")


def test_openvino_is_measured_against_a_bare_compiled_model(shapes_onnx, tmp_path):
    pytest.importorskip("openvino")
    from edgeseg_export.to_openvino import to_openvino

    image = make_scene(320, 240, 6).image
    cold = startup.measure_cold_start(shapes_onnx, repeats=1, image=image, backend="openvino", jit=False,
                                      ultralytics=False)
    assert COLD_KEYS <= cold.keys()
    assert (cold["backend"], cold["bare"]) == ("openvino", "bare OpenVINO compiled model")
    (bare,), (seg,) = cold["samples"]["bare_session"], cold["samples"]["edgeseg"]
    assert bare["input_shape"] == [1, 3, 640, 640] and 0 < cold["bare_session_s"] == bare["wall_s"]
    assert seg["objects"] > 0 and cold["edgeseg_s"] == seg["wall_s"] > 0
    assert cold["edgeseg_jit_cold_cache_s"] is None and cold["ratio_jit_warm_to_bare"] is None  # jit=False
    assert cold["ultralytics_s"] is None and cold["samples"]["ultralytics"] is None
    # an IR folder: the bare child reads the .xml with its .bin
    folder = tmp_path / "m_openvino_model"
    to_openvino(shapes_onnx, folder)
    target = startup.make_target(folder)
    assert target.backend == "openvino" and target.bare_args["weights"].endswith(".bin")
    memory = startup.measure_memory(folder, frames=3, image=image, ultralytics=False)
    assert MEMORY_KEYS <= memory.keys() and memory["backend"] == "openvino"
    assert 0 < memory["bare_session_peak_mib"] < memory["edgeseg_peak_mib"]  # edgeseg holds the model and more
    assert memory["ultralytics_peak_mib"] is None and memory["edgeseg_growth_mib_per_1000_frames"] is None


def test_memory_peaks_and_growth(shapes_onnx):
    memory = startup.measure_memory(shapes_onnx, provider="cpu", frames=60, image=np.zeros((240, 320, 3), np.uint8))
    assert MEMORY_KEYS <= memory.keys()
    assert memory["frames"] == 60
    for suffix in ("peak_mib", "long_peak_mib"):
        assert 0 < memory[f"bare_session_{suffix}"] < memory[f"edgeseg_{suffix}"]  # edgeseg holds a session and more
        # each child's own peak, not this test process's (Linux keeps ru_maxrss across fork + exec; this holds torch)
        assert memory[f"bare_session_{suffix}"] < 400
    assert memory["edgeseg_peak_mib"] <= memory["edgeseg_long_peak_mib"]  # a peak never falls
    assert memory["ratio_to_bare"] > 1 and memory["ratio_long_to_bare"] > 1
    assert isinstance(memory["edgeseg_growth_mib_per_1000_frames"], float)  # Linux: /proc/self/statm
    if startup.ultralytics_installed():
        assert memory["ultralytics_peak_mib"] > 0


# --- plots ---

def _stages(names, rng):
    stages = {}
    for name in names:
        samples = rng.gamma(4.0, 1.0, 50).tolist()
        stages[name] = {"mean": float(np.mean(samples)), "p50": float(np.median(samples)), "p90": 0.0, "p99": 0.0,
                        "max": max(samples), "fps": 1000 / np.mean(samples), "samples": samples}
    return stages


def _report(rng, extras: bool) -> dict:
    edgeseg_stages = ["preprocess", "inference", "decode_nms", "masks", "contours", "isolation", "annotation", "total"]
    runs = [
        {"name": "edgeseg", "kind": "edgeseg", "model": "m.onnx", "provider": "CPUExecutionProvider",
         "objects_per_frame": 8.0, "stages": _stages(edgeseg_stages, rng)},
        {"name": "ultralytics", "kind": "ultralytics", "model": "m.onnx", "provider": "cpu",
         "objects_per_frame": 8.0, "stages": _stages(["preprocess", "inference", "postprocess", "total"], rng)},
    ]
    report = {"edgeseg_version": "0.1.0", "machine": {"cpu": "x", "cores": 2, "gpu": None, "platform": "linux",
                                                      "python": "3", "versions": {}},
              "settings": {}, "runs": runs, "ratios": {}, "video": None, "cold_start": None, "memory": None,
              "plots": []}
    if extras:
        report["ratios"] = {"ultralytics / edgeseg": {"preprocess": 2.5, "inference": 1.0, "total": 1.8}}
        runs[0]["accuracy"] = {"mask_map50_95": 0.35, "mask_map50": 0.46, "box_map50_95": 0.33, "box_map50": 0.45}
        cold = {"model": "m.onnx", "backend": "onnxruntime", "bare": "bare onnxruntime session", "bare_session_s": 0.2,
                "edgeseg_s": 0.3, "kernels": "aot", "edgeseg_jit_warm_cache_s": 0.9, "edgeseg_jit_cold_cache_s": 5.0,
                "ultralytics_s": None}
        memory = {"model": "m.onnx", "backend": "onnxruntime", "bare": "bare onnxruntime session",
                  "bare_session_peak_mib": 140.0, "edgeseg_peak_mib": 180.0, "ultralytics_peak_mib": 840.0,
                  "bare_session_long_peak_mib": 200.0, "edgeseg_long_peak_mib": 230.0,
                  "ultralytics_long_peak_mib": 900.0, "frames": 200}
        on_openvino = {"backend": "openvino", "bare": "bare OpenVINO compiled model"}
        report["cold_start"] = [cold, {**cold, **on_openvino, "edgeseg_jit_warm_cache_s": None,
                                       "edgeseg_jit_cold_cache_s": None}]
        report["memory"] = [memory, {**memory, **on_openvino, "ultralytics_peak_mib": None,
                                     "ultralytics_long_peak_mib": None}]
    return report


def test_write_plots_writes_readable_pngs_atomically(tmp_path):
    paths = write_plots(_report(np.random.default_rng(0), extras=True), tmp_path / "plots")
    assert [p.name for p in paths] == ["latency.png", "breakdown.png", "speedup.png", "accuracy.png", "cold_start.png",
                                       "memory.png"]
    for path in paths:
        image = cv2.imread(str(path))
        assert image is not None, path
        assert image.shape[0] >= 200 and image.shape[1] >= 500, (path.name, image.shape)
        assert image.std() > 10, path.name  # something is drawn, not a blank page
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)  # no temp files


def test_write_plots_without_ratios_accuracy_cold_start_or_memory(tmp_path):
    paths = write_plots(_report(np.random.default_rng(1), extras=False), tmp_path)
    assert [p.name for p in paths] == ["latency.png", "breakdown.png"]
    assert all(cv2.imread(str(p)) is not None for p in paths)


def test_write_plots_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(ImportError, match=r"edgeseg\[plots\]"):
        write_plots(_report(np.random.default_rng(2), extras=False), tmp_path)
    assert not list(tmp_path.iterdir())

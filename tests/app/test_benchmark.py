"""edgeseg.app.benchmark: statistics against NumPy, the report's schema through the real CLI, options checked."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeseg.app.benchmark import run_benchmark
from edgeseg.app.benchmark.run import check_options
from edgeseg.app.benchmark.stats import paired_ratio, percentile, summarize
from edgeseg.errors import ConfigError

EDGESEG_STAGES = {"preprocess", "inference", "decode_nms", "masks", "contours", "isolation", "annotation", "total"}
STAT_KEYS = {"mean", "p50", "p90", "p99", "max", "fps", "samples"}
SAMPLES = {
    "one": [4.2],
    "two": [3.0, 1.0],
    "odd": [5.0, 1.0, 4.0, 2.0, 3.0],
    "even": [10.0, 0.5, 7.25, 3.0, 3.0, 9.0],
    "random": list(np.random.default_rng(0).lognormal(3.0, 0.5, 101)),
}


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("q", [0, 1, 37.5, 50, 90, 99, 100])
def test_percentile_matches_numpy(name, q):
    assert percentile(SAMPLES[name], q) == pytest.approx(np.percentile(SAMPLES[name], q), rel=1e-12, abs=1e-12)


def test_percentile_rejects_bad_input():
    with pytest.raises(ConfigError):
        percentile([], 50)
    with pytest.raises(ConfigError):
        percentile([1.0], 101)


def test_summarize_fields():
    s = summarize([2.0, 4.0, 6.0, 8.0])
    assert set(s) == STAT_KEYS
    assert s["mean"] == 5.0 and s["max"] == 8.0 and s["fps"] == pytest.approx(200.0)
    assert s["p50"] == pytest.approx(5.0) and s["p99"] == pytest.approx(np.percentile([2, 4, 6, 8], 99))


def test_paired_ratio_is_median_of_pairs():
    # medians taken separately would give 20 / 2 = 10; the pairs say 3, 5 and 100
    assert paired_ratio([30.0, 10.0, 200.0], [10.0, 2.0, 2.0]) == 5.0
    with pytest.raises(ConfigError):
        paired_ratio([1.0], [1.0, 2.0])


def _check_stats(stats: dict) -> None:
    assert set(stats) == STAT_KEYS
    assert 0 < stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert 0 < stats["mean"] <= stats["max"] and stats["fps"] > 0
    assert stats["max"] == max(stats["samples"])


def test_cli_writes_full_report(shapes_onnx, tmp_path):
    pytest.importorskip("ultralytics")
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "edgeseg", "benchmark", "--model", str(shapes_onnx), "--synthetic", "640x480",
           "--objects", "8", "--iters", "3", "--warmup", "1", "--compare", "ultralytics", "--video", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "edgeseg shapes11n-seg cpu" in proc.stdout and "speedup" in proc.stdout

    report = json.loads((out / "benchmark.json").read_text())
    assert set(report) == {"edgeseg_version", "machine", "settings", "runs", "ratios", "video", "cold_start", "memory",
                           "plots"}
    machine = report["machine"]
    assert ({"cpu", "cores", "gpu", "platform", "python", "kernels", "versions"} <= set(machine)
            and machine["cores"] >= 1)
    assert machine["kernels"] in ("aot", "jit")
    assert set(machine["versions"]) == {"edgeseg", "onnxruntime", "numba", "numpy", "opencv", "ultralytics"}
    assert machine["versions"]["ultralytics"]
    settings = report["settings"]
    assert settings == {"models": [str(shapes_onnx)], "providers": ["auto"], "backends": ["auto"], "devices": ["cpu"],
                        "source": "synthetic 640x480, 8 objects", "frames": 4, "imgsz": None, "batch": 1, "warmup": 1,
                        "iters": 3, "compare": ["ultralytics"]}

    edgeseg_run, ultra_run = report["runs"]
    assert edgeseg_run["kind"] == "edgeseg" and ultra_run["kind"] == "ultralytics"
    assert edgeseg_run["provider"] == "CPUExecutionProvider" and edgeseg_run["objects_per_frame"] > 0
    assert set(edgeseg_run["stages"]) == EDGESEG_STAGES
    assert set(ultra_run["stages"]) == {"preprocess", "inference", "postprocess", "total"}
    for run in report["runs"]:
        assert set(run) == {"name", "kind", "model", "provider", "device", "objects_per_frame", "stages"}
        assert run["device"] == "cpu"
        for stats in run["stages"].values():
            _check_stats(stats)
            assert len(stats["samples"]) == 3
    stages = edgeseg_run["stages"]
    total = sum(stages[s]["samples"][0] for s in EDGESEG_STAGES - {"total"})
    assert stages["total"]["samples"][0] == pytest.approx(total)

    ratios = report["ratios"][f"{edgeseg_run['name']} / {ultra_run['name']}"]
    assert set(ratios) == {"preprocess", "inference", "postprocess", "total"}
    assert all(v > 0 for v in ratios.values())
    video = report["video"]
    assert video["frames"] >= 10 and video["pipelined_fps"] > 0 and video["sequential_fps"] > 0
    assert report["cold_start"] and report["memory"]
    assert report["plots"] and all((out / p).is_file() for p in report["plots"])


def test_two_models_side_by_side(shapes_onnx, tmp_path):
    other = shutil.copy(shapes_onnx, tmp_path / "shapes-copy.onnx")
    report = run_benchmark([shapes_onnx, other], synthetic=(320, 240), objects=4, warmup=0, iters=2,
                           progress=False, startup=False)
    names = [run["name"] for run in report["runs"]]
    assert names == ["edgeseg shapes11n-seg cpu", "edgeseg shapes-copy cpu"]
    assert report["ratios"] == {} and report["video"] is None and report["plots"] == []
    assert report["cold_start"] is None and report["memory"] is None
    for run in report["runs"]:
        for stats in run["stages"].values():
            _check_stats(stats)


@pytest.mark.parametrize("args, message", [
    (["--iters", "0"], "iters must be at least 1"),
    (["--synthetic", "big"], "--synthetic takes a size like 1280x720"),
    (["--compare", "detectron"], "cannot compare with 'detectron'"),
    (["--providers", "nosuch"], "execution provider 'nosuch' is not available"),
    (["--devices", "cpu,tpu"], "post-processing devices must be among cpu, cuda, got cpu, tpu"),
])
def test_bad_options_give_one_line(shapes_onnx, args, message):
    cmd = [sys.executable, "-m", "edgeseg", "benchmark", "--model", str(shapes_onnx), "--no-startup", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeseg: error: ") and message in lines[0], proc.stderr


def test_compare_without_ultralytics_says_how_to_install(shapes_onnx, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ultralytics" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'edgeseg\[export\]'"):
        check_options([str(shapes_onnx)], ["auto"], (1280, 720), 20, 1, 20, 200, ["ultralytics"])

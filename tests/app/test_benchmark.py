"""edgeseg.app.benchmark: statistics against NumPy, the report's schema through the real CLI, options checked."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.app.benchmark import run_benchmark
from edgeseg.app.benchmark.run import check_options
from edgeseg.app.benchmark.stats import paired_ratio, percentile, summarize
from edgeseg.assets import demo_model_path
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
           "--objects", "8", "--iters", "3", "--warmup", "1", "--compare", "ultralytics,bare", "--video", "--out",
           str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "edgeseg shapes11n-seg cpu" in proc.stdout and "speedup" in proc.stdout

    report = json.loads((out / "benchmark.json").read_text())
    assert set(report) == {"edgeseg_version", "machine", "settings", "runs", "ratios", "overheads", "video",
                           "cold_start", "memory", "plots"}
    machine = report["machine"]
    assert ({"cpu", "cores", "gpu", "platform", "python", "kernels", "versions"} <= set(machine)
            and machine["cores"] >= 1)
    assert machine["kernels"] in ("aot", "jit")
    assert set(machine["versions"]) == {"edgeseg", "onnxruntime", "openvino", "numba", "numpy", "opencv",
                                        "ultralytics"}
    assert machine["versions"]["ultralytics"]
    settings = report["settings"]
    assert settings == {"models": [str(shapes_onnx)], "providers": ["auto"], "backends": ["auto"], "devices": ["cpu"],
                        "source": "synthetic 640x480, 8 objects", "frames": 4, "imgsz": None, "batch": 1, "warmup": 1,
                        "iters": 3, "compare": ["ultralytics", "bare"], "val": None}

    edgeseg_run, bare_run, ultra_run = report["runs"]
    assert [r["kind"] for r in report["runs"]] == ["edgeseg", "bare", "ultralytics"]
    assert (bare_run["name"], bare_run["provider"]) == ("bare shapes11n-seg cpu", "CPUExecutionProvider")
    assert set(bare_run["stages"]) == {"inference", "total"}
    assert edgeseg_run["provider"] == "CPUExecutionProvider" and edgeseg_run["objects_per_frame"] > 0
    assert set(edgeseg_run["stages"]) == EDGESEG_STAGES
    assert set(ultra_run["stages"]) == {"preprocess", "inference", "postprocess", "total"}
    for run in report["runs"]:
        assert set(run) == {"name", "kind", "model", "provider", "device", "objects_per_frame", "stages", "accuracy"}
        assert run["device"] == "cpu" and run["accuracy"] is None  # no --val
        for stats in run["stages"].values():
            _check_stats(stats)
            assert len(stats["samples"]) == 3
    stages = edgeseg_run["stages"]
    total = sum(stages[s]["samples"][0] for s in EDGESEG_STAGES - {"total"})
    assert stages["total"]["samples"][0] == pytest.approx(total)

    overhead = report["overheads"][f"{edgeseg_run['name']} / {bare_run['name']}"]
    assert set(overhead) == {"inference", "predict"} and all(v > 0 for v in overhead.values())
    assert "edgeseg against the bare runtime" in proc.stdout
    ratios = report["ratios"][f"{edgeseg_run['name']} / {ultra_run['name']}"]
    assert set(ratios) == {"preprocess", "inference", "postprocess", "total"}
    assert all(v > 0 for v in ratios.values())
    video = report["video"]
    assert video["frames"] >= 10 and video["pipelined_fps"] > 0 and video["sequential_fps"] > 0
    (cold_start,), (memory,) = report["cold_start"], report["memory"]  # one model on one backend
    for entry in (cold_start, memory):
        assert (entry["model"], entry["backend"], entry["bare"]) == (shapes_onnx.name, "onnxruntime",
                                                                     "bare onnxruntime session")
    assert cold_start["edgeseg_jit_cold_cache_s"] > 0 and cold_start["ultralytics_s"] > 0
    assert "cold start to the first result (fresh processes), shapes11n-seg.onnx on onnxruntime" in proc.stdout
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
    (["--val", "nope.yaml"], "dataset file not found: nope.yaml"),
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


# --- backends side by side, scored on a labelled dataset ---

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    pytest.importorskip("pycocotools")
    from edgeseg.app.synthetic import make_scene
    from tests.helpers.common import write_dataset

    scenes = {f"{i}.png": make_scene(w, h, n, i) for i, (w, h, n) in enumerate(((160, 120, 4), (200, 150, 6),
                                                                                 (128, 128, 3), (96, 96, 0)))}
    return write_dataset(tmp_path_factory.mktemp("tiny-val"), scenes)


@pytest.fixture(scope="module")
def demo_ir(tmp_path_factory):
    pytest.importorskip("openvino")
    from edgeseg_export.to_openvino import to_openvino

    folder = tmp_path_factory.mktemp("ir") / "shapes-320_openvino_model"
    to_openvino(demo_model_path(), folder)
    return folder


def test_backends_side_by_side_each_scored_on_a_dataset(tiny_data, demo_ir):
    from edgeseg import Segmenter
    from edgeseg.app.benchmark.report import format_table
    from edgeseg.app.val import VAL_SETTINGS, validate

    onnx = demo_model_path()
    # the IR runs on OpenVINO only; the .onnx on both
    report = run_benchmark([onnx, demo_ir], backends=["onnxruntime", "openvino"], synthetic=(160, 120), objects=3,
                           warmup=0, iters=2, progress=False, startup=False, val=tiny_data, compare=["bare"])
    runs = [run for run in report["runs"] if run["kind"] == "edgeseg"]
    bare = [run for run in report["runs"] if run["kind"] == "bare"]
    assert [(r["name"], r["accuracy"]) for r in bare] == [("bare shapes11n-seg-320 cpu", None),
                                                          ("bare shapes11n-seg-320 openvino:cpu", None),
                                                          ("bare shapes-320_openvino_model openvino:cpu", None)]
    assert list(report["overheads"]) == [f"{r['name']} / {b['name']}" for r, b in zip(runs, bare, strict=True)]
    assert [(Path(r["model"]).name, r["provider"]) for r in runs] == [
        (onnx.name, "CPUExecutionProvider"), (onnx.name, "OpenVINO:CPU"), (demo_ir.name, "OpenVINO:CPU")]
    assert report["settings"]["val"] == str(tiny_data)
    for run, (model, backend) in zip(runs, [(onnx, "onnxruntime"), (onnx, "openvino"), (demo_ir, "openvino")],
                                     strict=True):
        with Segmenter(model, backend=backend, **VAL_SETTINGS) as seg:
            expected = validate(seg, tiny_data, progress=False)
        assert run["accuracy"] == {"box_map50": expected.box_map50, "box_map50_95": expected.box_map50_95,
                                   "mask_map50": expected.mask_map50, "mask_map50_95": expected.mask_map50_95,
                                   "images": 4, "instances": 13}, run["name"]
        assert 0.0 < run["accuracy"]["mask_map50_95"] <= 1.0
    table = format_table(report)
    assert f"accuracy on {tiny_data} (4 images, 13 objects" in table
    for run in runs:
        line = next(line for line in table.split("accuracy on")[1].splitlines() if line.startswith(f"  {run['name']} "))
        assert f"{run['accuracy']['mask_map50_95']:.4f}" in line
        change = run["accuracy"]["mask_map50_95"] - runs[0]["accuracy"]["mask_map50_95"]
        assert line.split()[-1] == f"{round(change, 4) + 0.0:+.4f}"


def test_which_backend_takes_which_model(tmp_path, demo_ir):
    from edgeseg.app.benchmark.run import runs_of

    onnx, engine = str(demo_model_path()), str(tmp_path / "m.engine")
    runs = runs_of([onnx, str(demo_ir)], ["onnxruntime", "openvino"], ["cpu", "cuda"], ["cpu"])
    assert runs == [(onnx, ("onnxruntime", "cpu"), "cpu"), (onnx, ("onnxruntime", "cuda"), "cpu"),
                    (onnx, ("openvino", "auto"), "cpu"), (str(demo_ir), ("openvino", "auto"), "cpu")]
    assert [r[1][0] for r in runs_of([engine, onnx], ["auto"], ["auto"], ["cpu"])] == ["auto", "auto"]
    with pytest.raises(ConfigError, match=r"m.engine cannot run on onnxruntime, openvino: give --backends"):
        runs_of([onnx, engine], ["onnxruntime", "openvino"], ["auto"], ["cpu"])


def test_cold_start_and_memory_for_each_model_on_each_backend(monkeypatch, caplog):
    from edgeseg.app.benchmark import run as bench_run
    from edgeseg.app.benchmark import startup

    calls = []

    def fake(kind):
        def measure(model, **kwargs):
            calls.append((kind, Path(model).name, kwargs["backend"], kwargs.get("jit"), kwargs["ultralytics"]))
            return {"model": Path(model).name, "backend": kwargs["backend"]}
        return measure

    monkeypatch.setattr(startup, "measure_cold_start", fake("cold"))
    monkeypatch.setattr(startup, "measure_memory", fake("memory"))
    opened = [bench_run.Opened(m, b, p, {}) for m, b, p in (
        ("a.onnx", "onnxruntime", "cpu"), ("a.onnx", "onnxruntime", "cuda"), ("a.onnx", "openvino", "auto"),
        ("b.onnx", "openvino", "auto"), ("c.engine", "tensorrt", "auto"))]
    report: dict = {}
    with caplog.at_level("WARNING"):
        bench_run._add_startup_and_memory(report, opened, 10, np.zeros((8, 8, 3), np.uint8))
    # a model once per backend (its first provider); Numba's JIT variants once; Ultralytics once per model
    assert calls == [("cold", "a.onnx", "onnxruntime", True, True), ("memory", "a.onnx", "onnxruntime", None, True),
                     ("cold", "a.onnx", "openvino", False, False), ("memory", "a.onnx", "openvino", None, False),
                     ("cold", "b.onnx", "openvino", False, True), ("memory", "b.onnx", "openvino", None, True)]
    assert [(e["model"], e["backend"]) for e in report["cold_start"]] == [
        ("a.onnx", "onnxruntime"), ("a.onnx", "openvino"), ("b.onnx", "openvino")]
    assert "no cold start or memory for c.engine on tensorrt" in caplog.text


def test_a_dataset_that_cannot_score_the_model_fails_before_the_timing(tiny_data, random80_onnx, monkeypatch,
                                                                       tmp_path):
    from edgeseg.app.benchmark import run as bench_run
    from edgeseg.errors import SourceError

    monkeypatch.setattr(bench_run, "measure", lambda *a, **k: pytest.fail("timed a model the dataset cannot score"))
    options = {"synthetic": (160, 120), "warmup": 0, "iters": 1, "progress": False, "startup": False}
    with pytest.raises(ConfigError, match=r"has 80 classes but .*data.yaml names 5"):
        run_benchmark(random80_onnx, val=tiny_data, **options)
    broken = Path(shutil.copytree(tiny_data.parent, tmp_path / "broken")) / "data.yaml"
    next((broken.parent / "labels" / "val").iterdir()).write_text("0 0.1 0.2 0.3\n")  # half a point
    with pytest.raises(SourceError, match=r"labels/val/.*\.txt"):
        run_benchmark(demo_model_path(), val=broken, **options)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_bare_runtime_runs_what_edgeseg_runs(backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    from edgeseg import Segmenter
    from edgeseg.app.benchmark.bare import BareStages, open_runtime
    from edgeseg.app.benchmark.startup import make_target
    from edgeseg.app.synthetic import make_scene

    image = make_scene(200, 150, 5).image
    with Segmenter(demo_model_path(), backend=backend) as seg:
        target = make_target(demo_model_path(), "auto", backend)
        tensor = seg.preprocess([image])[0]
        ours, bare = seg.infer(tensor), open_runtime(target)(tensor)
        if backend == "openvino":
            bare = bare.to_tuple()  # OpenVINO's results, in the model's output order
        for a, b in zip(ours, bare, strict=True):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-4)
        stages = BareStages(seg, target)
        frames = [image]
        record = stages(frames)
        assert set(record) == {"inference", "total", "objects"} and record["inference"] == record["total"] > 0
        assert stages._tensor(frames) is stages._tensor(frames)  # preprocessed once per batch


def test_the_report_never_lands_on_an_input(tmp_path):
    import cv2

    from edgeseg.app.synthetic import make_scene
    from edgeseg.errors import OutputError

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "latency.png"), make_scene(160, 120, 3).image)  # a frame named as a plot is
    before = (folder / "latency.png").read_bytes()
    cmd = [sys.executable, "-m", "edgeseg", "benchmark", "--model", str(demo_model_path()), "--source", str(folder),
           "--iters", "1", "--warmup", "0", "--no-startup", "--out", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgeseg: error: --out ") and "latency.png is an input of this run" in lines[0]
    assert (folder / "latency.png").read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [
        "latency.png"]
    a_file = tmp_path / "report.txt"
    a_file.write_text("mine")
    with pytest.raises(OutputError, match="is a file; give a folder"):
        run_benchmark(demo_model_path(), synthetic=(160, 120), iters=1, warmup=0, progress=False, startup=False,
                      out_dir=a_file)
    assert a_file.read_text() == "mine"

"""ONNX Runtime against OpenVINO on the shared 640 model, FP32 and INT8, side by side: bare runtime and edgeseg per
frame, cold start and peak memory in fresh processes, and mask mAP on the shared validation set.

    python benchmarks/compare_backends.py [--iters 30] [--calib-images 32] [--out results.json]

INT8: ONNX Runtime's QDQ export (edgeseg_export.quantize) and NNCF's OpenVINO IR (edgeseg_export.to_openvino), both
calibrated on the same seeded synthetic scenes. Needs the export, val and openvino extras (and nncf).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "shapes11n-seg.onnx"
DATA_YAML = SHARED / "data" / "shapes-seg" / "data.yaml"
VAL = SHARED / "data" / "shapes-seg" / "images" / "val"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from edgeseg import Segmenter
model, backend, image, cache = sys.argv[1:5]
options = {"openvino_cache": cache} if cache else None
with Segmenter(model, backend=backend, provider_options=options) as seg:
    seg(image)
    first = time.perf_counter() - t0
    for _ in range(20):
        seg(image)
# VmHWM, not ru_maxrss: Linux keeps the parent's ru_maxrss across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"first_result_s": first, "peak_rss_mib": peak / 1024}))
"""


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def timed(calls: dict, iters: int, warmup: int = 5) -> dict[str, float]:
    """Median ms of each call, the calls interleaved (one of each per round) so that a busy moment of the machine
    falls on all of them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(iters):
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def bare_ort(model: Path) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def bare_ov(model: Path, precision: str = "f32") -> object:
    import openvino as ov

    compiled = ov.Core().compile_model(str(model), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                            "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def edgeseg_times(model: Path, backend: str, images: list[np.ndarray], iters: int, bare: object = None) -> dict:
    """The bare runtime, edgeseg's backend on the same tensor (interleaved with it), and a whole predict per
    frame (preprocess, network, boxes and masks at source resolution)."""
    from edgeseg import Segmenter

    with Segmenter(model, backend=backend) as seg:
        seg.warmup()
        tensor, _ = seg.preprocess([images[0]])
        k = iter(range(10**9))
        calls = {"infer_ms": lambda: seg.backend.infer(tensor),
                 "predict_ms": lambda: seg.predict(images[next(k) % len(images)])}
        if bare is not None:
            calls["bare_ms"] = lambda: bare(tensor)
        return timed(calls, iters)


def throughput(model: Path, images: list[np.ndarray], frames: int) -> dict:
    """Frames per second of the OpenVINO backend: latency hint one run after another, against the throughput hint
    with runs in flight at once (infer_many, an AsyncInferQueue)."""
    from edgeseg import Segmenter

    result = {}
    for hint in ("latency", "throughput"):
        with Segmenter(model, backend="openvino", provider_options={"openvino_hint": hint}) as seg:
            batches = [seg.preprocess([image])[0].copy() for image in images[:8]]
            stream = [batches[k % len(batches)] for k in range(frames)]
            for _ in seg.backend.infer_many(stream[:4]):
                pass
            t = time.perf_counter()
            if hint == "latency":
                for batch in stream:
                    seg.backend.infer(batch)
            else:
                for _ in seg.backend.infer_many(stream):
                    pass
            result[f"{hint}_fps"] = frames / (time.perf_counter() - t)
            result[f"{hint}_requests"] = seg.backend.optimal_requests
    return result


def cold_start(model: Path, backend: str, image: Path, cache: str = "") -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), backend, str(image), cache], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def mask_map(model: Path, backend: str) -> float:
    from edgeseg import Segmenter
    from edgeseg.app.val import validate

    with Segmenter(model, conf=0.001, iou=0.7, multi_label=True, backend=backend) as seg:
        return validate(seg, DATA_YAML, progress=False).mask_map50_95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from edgeseg.app.synthetic import make_scene
    from edgeseg_export.quantize import quantize_int8
    from edgeseg_export.to_openvino import to_openvino

    images = [cv2.imread(str(p)) for p in sorted(VAL.glob("*.jpg"))[:16]]
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="edgeseg-backends-") as work:
        work = Path(work)
        calib = work / "calib"
        calib.mkdir()
        for i in range(args.calib_images):
            cv2.imwrite(str(calib / f"{i:03d}.jpg"), make_scene(640, 640, (1, 12), 10_000 + i, layout="random").image)
        qdq = quantize_int8(MODEL, calib, work / "shapes-int8.onnx", calib_images=args.calib_images)
        nncf_ir = to_openvino(MODEL, work / "shapes-int8_openvino_model", int8=True, calib_dir=calib,
                              calib_images=args.calib_images)
        rows = []
        for precision, ort_model, ov_model in (("FP32", MODEL, MODEL), ("INT8", qdq, nncf_ir)):
            for backend, model in (("onnxruntime", ort_model), ("openvino", ov_model)):
                row = {"precision": precision, "backend": backend, "model": model.name}
                bare = bare_ort(model) if backend == "onnxruntime" else bare_ov(model)
                row.update(edgeseg_times(model, backend, images, args.iters, bare))
                row["edgeseg_over_bare"] = row["infer_ms"] / row["bare_ms"]
                row.update(cold_start(model, backend, sorted(VAL.glob("*.jpg"))[0]))
                row["mask_map50_95"] = mask_map(model, backend)
                rows.append(row)
                print(json.dumps(row), flush=True)
        bf16 = bare_ov(MODEL, "bf16")
        extra = {
            "openvino_bf16_bare_ms": timed({"bf16": lambda: bf16(x)}, args.iters)["bf16"],
            "openvino_qdq_onnx": edgeseg_times(qdq, "openvino", images, args.iters),
            "openvino_qdq_onnx_mask_map50_95": mask_map(qdq, "openvino"),
            "openvino_throughput": throughput(MODEL, images, 4 * args.iters),
        }
        cache = str(work / "ov-cache")
        extra["openvino_cold_start_cache"] = [cold_start(MODEL, "openvino", sorted(VAL.glob("*.jpg"))[0], cache)
                                              for _ in range(2)]
    report = {"cpu": cpu_name(), "cores": os.cpu_count(), "rows": rows, "extra": extra}
    print(f"\n{report['cpu']}, {report['cores']} cores; ms per frame (median)")
    print(f"{'precision':9} {'backend':12} {'bare':>7} {'edgeseg infer':>13} {'ratio':>6} {'predict':>8} "
          f"{'cold s':>7} {'MiB':>6} {'mask mAP50-95':>13}")
    for r in rows:
        print(f"{r['precision']:9} {r['backend']:12} {r['bare_ms']:7.1f} {r['infer_ms']:13.1f} "
              f"{r['edgeseg_over_bare']:6.3f} {r['predict_ms']:8.1f} {r['first_result_s']:7.2f} "
              f"{r['peak_rss_mib']:6.0f} {r['mask_map50_95']:13.4f}")
    print(json.dumps(extra, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

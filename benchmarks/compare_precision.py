"""FP32 against FP16 against INT8 ONNX models of one checkpoint on the CPU: latency and accuracy in one run.

    python benchmarks/compare_precision.py [--iters N] [--warmup N] [--calib synthetic|val] [--calib-images 200]
                                           [--methods minmax,percentile] [--keep DIR] [--json out.json]

The models are made here from shared/models/shapes11n-seg.pt by edgeseg_export at 320x320: float32 and half
(edgeseg_export.to_onnx), and quantize_int8 of the float32 one for each calibration method asked for.

Calibration: by default on synthetic scenes drawn for this run (edgeseg.app.synthetic, the distribution the model was
trained on, other seeds than the evaluation split's). `--calib val` calibrates on the evaluation images themselves,
which flatters INT8: its activation ranges are then fitted to the very images it is scored on.

Accuracy: box and mask mAP50-95 and mAP50 (edgeseg_export.accuracy.mask_map: pycocotools, conf 0.001, iou 0.7) on
shared/data/shapes-seg, the same code for every model. Latency: edgeseg's Segmenter end to end on the validation
images (conf 0.25), interleaved: each iteration gives every model a turn on the same image, in an order that rotates,
and each turn starts with one untimed call, because ONNX Runtime's worker threads of the previous session keep
spinning for a while and slow down the first run of the next (see compare.py). Speedups are medians of
per-iteration ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
from scenes import SHARED

from edgeseg import Segmenter
from edgeseg.app.synthetic import make_scene
from edgeseg.outputs.files import write_bytes
from edgeseg_export.accuracy import mask_map
from edgeseg_export.quantize import METHODS, quantize_int8
from edgeseg_export.to_onnx import OnnxOptions, export_onnx

CHECKPOINT = SHARED / "models" / "shapes11n-seg.pt"
DATASET = SHARED / "data" / "shapes-seg"
IMGSZ = 320
CONF = 0.25  # the latency runs use the usual deployment threshold; accuracy uses mask_map's 0.001
JPEG_QUALITY = 92  # as shared/tools/make_shapes.py saved the dataset
SYNTHETIC_SEED = 10_000  # scene i of the calibration set is seed SYNTHETIC_SEED + i: none of the evaluation images


def make_models(folder: Path, methods: list[str], calib: str, calib_images: int) -> dict[str, Path]:
    """label -> ONNX file: "FP32", "FP16", then "INT8 <method>" for each method."""
    models = {}
    for label, half in (("FP32", False), ("FP16", True)):
        models[label] = export_onnx(CHECKPOINT, folder / f"shapes11n-seg-{label.lower()}.onnx",
                                    OnnxOptions(imgsz=(IMGSZ, IMGSZ), half=half))
    if calib == "synthetic":
        calib_dir = folder / "calibration"
        for i in range(calib_images):
            scene = make_scene(IMGSZ, IMGSZ, (1, 12), SYNTHETIC_SEED + i, layout="random")
            # JPEG at the quality the training and evaluation images were saved with: the same compression noise
            jpeg = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1]
            write_bytes(calib_dir / f"{i:05d}.jpg", jpeg.tobytes())
    else:
        calib_dir = DATASET / "images" / "val"
    for method in methods:
        label = f"INT8 {method}"
        t0 = time.perf_counter()
        models[label] = quantize_int8(models["FP32"], calib_dir, folder / f"shapes11n-seg-int8-{method}.onnx",
                                      calib_images=calib_images, method=method)
        print(f"{label}: quantized in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return models


def measure_latency(models: dict[str, Path], iters: int, warmup: int) -> dict[str, list[dict[str, float]]]:
    """label -> one record per timed iteration: total, preprocess, inference, postprocess (ms)."""
    images = [cv2.imread(str(p)) for p in sorted((DATASET / "images" / "val").glob("*.jpg"))]
    segs = {label: Segmenter(path, conf=CONF, providers=["cpu"]) for label, path in models.items()}
    for seg in segs.values():
        seg.warmup()
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in models}
    order = list(models)
    for it in range(warmup + iters):
        print(f"\r{'warmup' if it < warmup else 'iteration'} {it + 1 - (0 if it < warmup else warmup)}   ",
              end="", file=sys.stderr, flush=True)
        image = images[it % len(images)]
        shift = it % len(order)
        for label in order[shift:] + order[:shift]:
            segs[label].predict(image)  # settles: lets the previous session's threads stop spinning (see top)
            t0 = time.perf_counter()
            (result,) = segs[label].predict(image)
            total = (time.perf_counter() - t0) * 1e3
            if it >= warmup:
                samples[label].append({"total": total, **result.speed})
    print(file=sys.stderr)
    for seg in segs.values():
        seg.close()
    return samples


def summarize(models: dict[str, Path], samples: dict[str, list[dict]], accuracy: dict[str, dict]) -> dict[str, dict]:
    reference = samples["FP32"]
    out = {}
    for label, path in models.items():
        med = {k: statistics.median(r[k] for r in samples[label]) for k in samples[label][0]}
        speedup = statistics.median(a["total"] / b["total"] for a, b in zip(reference, samples[label], strict=True))
        out[label] = {"file": path.name, "size_mb": path.stat().st_size / 2**20, "median_ms": med,
                      "speedup_vs_fp32": speedup, "accuracy": accuracy[label], "samples_ms": samples[label]}
    return out


def markdown(summary: dict[str, dict]) -> str:
    rows = ["| model | file size (MiB) | total ms / image | inference ms | speedup vs FP32 | mask mAP50-95 "
            "| mask mAP50 | box mAP50-95 | box mAP50 |", "|---|---|---|---|---|---|---|---|---|"]
    for label, s in summary.items():
        acc, med = s["accuracy"], s["median_ms"]
        rows.append(f"| {label} | {s['size_mb']:.1f} | {med['total']:.1f} | {med['inference']:.1f} | "
                    f"{s['speedup_vs_fp32']:.2f}x | {acc['mask_map50_95']:.3f} | {acc['mask_map50']:.3f} | "
                    f"{acc['box_map50_95']:.3f} | {acc['box_map50']:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=60, help="timed iterations (default 60)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    parser.add_argument("--calib", choices=("synthetic", "val"), default="synthetic",
                        help="calibrate on fresh synthetic scenes (default) or the evaluation images (flatters INT8)")
    parser.add_argument("--calib-images", type=int, default=200, help="calibration images (default 200)")
    parser.add_argument("--methods", default="minmax,percentile",
                        help=f"INT8 calibration methods, comma-separated: {', '.join(METHODS)} "
                             "(default minmax,percentile)")
    parser.add_argument("--keep", type=Path,
                        help="write the models (and calibration images) here instead of a temporary folder")
    parser.add_argument("--json", type=Path, help="also write medians, accuracy and every sample here")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if args.iters < 1 or args.warmup < 0 or args.calib_images < 1:
        parser.error("--iters and --calib-images must be at least 1, --warmup at least 0")
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--methods takes a comma-separated list of {', '.join(METHODS)}")
    for path in (CHECKPOINT, DATASET):
        if not path.exists():
            parser.error(f"{path} not found (set EDGESEG_SHARED to the project's shared folder)")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no update checks

    import onnxruntime
    import ultralytics

    with tempfile.TemporaryDirectory(prefix="edgeseg-precision.") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        models = make_models(folder, methods, args.calib, args.calib_images)
        accuracy = {}
        for label, path in models.items():
            accuracy[label] = mask_map(path, DATASET)
            print(f"{label}: mask mAP50-95 {accuracy[label]['mask_map50_95']:.3f}", file=sys.stderr)
        load_before = os.getloadavg()
        samples = measure_latency(models, args.iters, args.warmup)
        load_after = os.getloadavg()
        summary = summarize(models, samples, accuracy)

    calibration = (f"{args.calib_images} synthetic scenes (seeds {SYNTHETIC_SEED}+)" if args.calib == "synthetic"
                   else "the evaluation images themselves (flatters INT8)")
    print(f"\nshapes11n-seg at {IMGSZ}x{IMGSZ} on the CPU; accuracy on {DATASET.name} "
          f"({accuracy['FP32']['images']} images, {accuracy['FP32']['instances']} objects); INT8 calibrated on "
          f"{calibration}; latency: medians of {args.iters} iterations after {args.warmup} warmup, conf {CONF}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} -> {load_after[0]:.1f}; "
          f"onnxruntime {onnxruntime.__version__}, ultralytics {ultralytics.__version__}\n")
    print(markdown(summary))
    if args.json:
        report = {
            "imgsz": IMGSZ, "iters": args.iters, "warmup": args.warmup, "calibration": calibration,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                        "ultralytics": ultralytics.__version__, "load_average": [load_before[0], load_after[0]]},
            "models": summary,
        }
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

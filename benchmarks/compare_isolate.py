"""Isolating every object of a frame: edgeseg against the classic per-object OpenCV recipe, same masks.

    python benchmarks/compare_isolate.py [--iters N] [--sizes 1920x1080] [--objects 20,100] [--json out.json]

The objects are the ground truth of a seeded synthetic scene (no network run: the model is not what is
timed), so both sides cut out exactly the same masks. The classic recipe is the loop users write from
Ultralytics' isolation guide: per object a full-frame mask from cv2.drawContours(FILLED), then
cv2.bitwise_and (black) or np.dstack (transparent), then a crop of the integer box. It is handed the
outlines ready-made, and so is edgeseg's contour cut-out (its traced outlines are cached on the
results), so neither side pays for contour tracing. Runs are interleaved and ratios are medians of
per-iteration ratios, so drift on a shared machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.app.synthetic import NAMES, make_scene
from edgeseg.results import Boxes, Masks, Results

CASES = [(bg, crop) for crop in (True, False) for bg in ("black", "transparent")]


def scene_results(width: int, height: int, objects: int, seed: int = 0) -> Results:
    """A Results holding a synthetic scene's visible objects as detections (boxes of their visible pixels)."""
    scene = make_scene(width, height, objects, seed)
    boxes = scene.boxes.astype(np.int64)
    crops = tuple((scene.instance_ids[y0:y1, x0:x1] == i + 1).astype(np.uint8)
                  for i, (x0, y0, x1, y1) in enumerate(boxes))
    n = len(crops)
    return Results(scene.image, None, dict(enumerate(NAMES)),
                   Boxes(scene.boxes, np.ones(n, np.float32), scene.classes, scene.shape),
                   Masks(crops, boxes[:, :2].copy(), scene.shape))


def classic_recipe(frame: np.ndarray, polygons: list[np.ndarray], xyxy: np.ndarray, background: str,
                   crop: bool) -> list:
    out = []
    for polygon, box in zip(polygons, xyxy, strict=True):
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.drawContours(mask, [polygon.astype(np.int32).reshape(-1, 1, 2)], -1, 255, cv2.FILLED)
        if background == "black":
            isolated = cv2.bitwise_and(cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), frame)
        else:
            isolated = np.dstack([frame, mask])
        if crop:
            x1, y1, x2, y2 = box.astype(np.int32)
            isolated = isolated[y1:y2, x1:x2]
        out.append(isolated)
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def measure(result: Results, iters: int, warmup: int) -> dict:
    polygons, xyxy = result.masks.xy, result.boxes.xyxy  # traced once, outside the timings
    contenders = {
        "classic": lambda bg, crop: classic_recipe(result.orig_img, polygons, xyxy, bg, crop),
        "edgeseg_mask": lambda bg, crop: result.isolate(bg, crop, "mask"),
        "edgeseg_contour": lambda bg, crop: result.isolate(bg, crop, "contour"),
    }
    for bg, crop in CASES:  # the outputs agree before anything is timed
        for a, b in zip(contenders["classic"](bg, crop), contenders["edgeseg_contour"](bg, crop), strict=True):
            if not np.array_equal(a, b):
                sys.exit(f"edgeseg's contour cut-out differs from the classic recipe ({bg}, crop={crop})")
    samples = {f"{bg}-{'crop' if crop else 'full'}": {who: [] for who in contenders} for bg, crop in CASES}
    for it in range(warmup + iters):
        for k, (bg, crop) in enumerate(CASES):
            order = list(contenders)
            shift = (it + k) % len(order)
            for who in order[shift:] + order[:shift]:
                ms = timed(lambda who=who, bg=bg, crop=crop: contenders[who](bg, crop))
                if it >= warmup:
                    samples[f"{bg}-{'crop' if crop else 'full'}"][who].append(ms)
    summary = {}
    for case, by in samples.items():
        summary[case] = {
            "median_ms": {who: statistics.median(v) for who, v in by.items()},
            "speedup_mask": statistics.median(c / e for c, e in zip(by["classic"], by["edgeseg_mask"], strict=True)),
            "speedup_contour": statistics.median(c / e for c, e in zip(by["classic"], by["edgeseg_contour"],
                                                                       strict=True)),
        }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sizes", default="1920x1080", help="frame sizes WxH, comma-separated")
    parser.add_argument("--objects", default="20,100", help="object counts, comma-separated")
    parser.add_argument("--json", type=Path, help="also write every median and ratio here")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    counts = [int(v) for v in args.objects.split(",")]

    report, load = {}, os.getloadavg()[0]
    rows = ["| frame | objects | case | classic (ms) | edgeseg mask (ms) | edgeseg contour (ms) | speedup mask | "
            "speedup contour |", "|---|---|---|---|---|---|---|---|"]
    for width, height in sizes:
        for objects in counts:
            result = scene_results(width, height, objects)
            result.isolate()  # compiles (or loads) the kernels
            summary = measure(result, args.iters, args.warmup)
            report[f"{width}x{height}-{objects}"] = {"objects_visible": len(result), **summary}
            for case, s in summary.items():
                m = s["median_ms"]
                rows.append(f"| {width}x{height} | {len(result)} | {case} | {m['classic']:.2f} | "
                            f"{m['edgeseg_mask']:.2f} | {m['edgeseg_contour']:.2f} | {s['speedup_mask']:.1f}x | "
                            f"{s['speedup_contour']:.1f}x |")
    print(f"{args.iters} iterations after {args.warmup} warmup, medians; {os.cpu_count()} CPUs, "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

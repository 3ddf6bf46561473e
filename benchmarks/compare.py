"""edgeseg against Ultralytics (same ONNX file, retina_masks=True) and a bare onnxruntime session.

    python benchmarks/compare.py [--iters N] [--warmup N] [--json out.json]

Everything runs in one process, interleaved: each iteration gives every contender a turn on every
scene, in an order that rotates, so drift on a shared machine hits all contenders alike. Ratios
are medians of per-iteration ratios (the two numbers of a pair were measured moments apart).

Each turn starts with one untimed call. ONNX Runtime's worker threads keep spinning for a while
after a run, so the first run of a session right after another session's run shares the cores with
those spinning threads and takes about 1.6x as long on this 2-core machine, whoever it is. An
application runs one session, so the settled calls are the ones that say how fast each side is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scenes import MODEL, SCENES, Scene

from edgeseg import Segmenter

STAGES = ("preprocess", "inference", "postprocess")
# ratio -> (target, is the target a floor); total_speedup has no target
TARGETS = {"postprocess_speedup": (5.0, True), "total_over_bare_run": (1.15, False)}

Run = Callable[[], dict[str, float]]  # one timed call -> milliseconds by metric (and "objects")


def edgeseg_run(seg: Segmenter, image: np.ndarray) -> Run:
    def run() -> dict[str, float]:
        t0 = time.perf_counter()
        (result,) = seg.predict(image)
        total = (time.perf_counter() - t0) * 1e3
        return {**{k: result.speed[k] for k in STAGES}, "total": total, "objects": len(result)}

    return run


def ultralytics_run(yolo, image: np.ndarray, conf: float) -> Run:
    def run() -> dict[str, float]:
        t0 = time.perf_counter()
        (result,) = yolo.predict(image, conf=conf, retina_masks=True, verbose=False)
        total = (time.perf_counter() - t0) * 1e3
        return {**{k: result.speed[k] for k in STAGES}, "total": total, "objects": len(result)}

    return run


def bare_run(session, tensor: np.ndarray) -> Run:
    feed = {session.get_inputs()[0].name: tensor}

    def run() -> dict[str, float]:
        t0 = time.perf_counter()
        session.run(None, feed)
        return {"total": (time.perf_counter() - t0) * 1e3}

    return run


def build_runs(model: Path) -> dict[str, dict[str, Run]]:
    """scene name -> contender -> run, with every session opened and the Numba kernels compiled."""
    import onnxruntime as ort
    from ultralytics import YOLO

    segs = {conf: Segmenter(model, conf=conf) for conf in {s.conf for s in SCENES}}
    for seg in segs.values():
        seg.warmup()  # compiles (or loads) the Numba kernels
    yolo = YOLO(str(model), task="segment")
    session = None
    runs = {}
    for scene in SCENES:
        seg = segs[scene.conf]
        # the bare session uses what edgeseg chose, so both run on the same provider
        session = session or ort.InferenceSession(str(model), providers=list(seg.providers))
        image = scene.image()
        tensor = seg.preprocess([image])[0].copy()  # the Preprocessor's buffer is reused by the next call
        runs[scene.name] = {
            "edgeseg": edgeseg_run(seg, image),
            "ultralytics": ultralytics_run(yolo, image, scene.conf),
            "bare_run": bare_run(session, tensor),
        }
    return runs


def measure(runs: dict[str, dict[str, Run]], iters: int, warmup: int) -> dict[str, dict[str, list[dict]]]:
    """scene -> contender -> one record per iteration; warmup iterations are run and dropped."""
    samples = {name: {who: [] for who in contenders} for name, contenders in runs.items()}
    for it in range(warmup + iters):
        label = f"warmup {it + 1}/{warmup}" if it < warmup else f"iteration {it + 1 - warmup}/{iters}"
        print(f"\r{label}   ", end="", file=sys.stderr, flush=True)
        for k, (name, contenders) in enumerate(runs.items()):
            order = list(contenders)
            shift = (it + k) % len(order)
            for who in order[shift:] + order[:shift]:
                contenders[who]()  # settles: lets the previous session's threads stop spinning (see top)
                record = contenders[who]()
                if it >= warmup:
                    samples[name][who].append(record)
    print(file=sys.stderr)
    return samples


def summarize(scene: Scene, samples: dict[str, list[dict]]) -> dict:
    def median(who: str, metric: str) -> float:
        return statistics.median(r[metric] for r in samples[who])

    def paired(f: Callable[[dict, dict, dict], float]) -> float:
        return statistics.median(f(e, u, b) for e, u, b in zip(samples["edgeseg"], samples["ultralytics"],
                                                                samples["bare_run"], strict=True))

    return {
        "width": scene.width, "height": scene.height, "objects_drawn": scene.objects, "conf": scene.conf,
        "found": {who: int(median(who, "objects")) for who in ("edgeseg", "ultralytics")},
        "median_ms": {who: {m: median(who, m) for m in samples[who][0] if m != "objects"} for who in samples},
        "ratios": {
            "postprocess_speedup": paired(lambda e, u, b: u["postprocess"] / e["postprocess"]),
            "total_over_bare_run": paired(lambda e, u, b: e["total"] / b["total"]),
            "total_speedup": paired(lambda e, u, b: u["total"] / e["total"]),
        },
        "samples_ms": samples,
    }


def markdown(summary: dict[str, dict]) -> str:
    times = ["| scene | objects found (edgeseg / Ultralytics) | edgeseg pre / inf / post / total (ms) | "
             "Ultralytics pre / inf / post / total (ms) | bare run (ms) |", "|---|---|---|---|---|"]
    ratios = ["| scene | postprocess speedup (target ≥ 5x) | edgeseg total / bare run (target ≤ 1.15x) | "
              "total speedup vs Ultralytics |", "|---|---|---|---|"]
    for name, s in summary.items():
        med = s["median_ms"]
        stages = {who: " / ".join(f"{med[who][m]:.1f}" for m in (*STAGES, "total"))
                  for who in ("edgeseg", "ultralytics")}
        times.append(f"| {name} | {s['found']['edgeseg']} / {s['found']['ultralytics']} | {stages['edgeseg']} | "
                     f"{stages['ultralytics']} | {med['bare_run']['total']:.1f} |")
        cells = []
        for key, value in s["ratios"].items():
            target, floor = TARGETS.get(key, (None, True))
            missed = target is not None and (value < target if floor else value > target)
            cells.append(f"{value:.2f}x{' (missed)' if missed else ''}")
        ratios.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(times) + "\n\n" + "\n".join(ratios)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--json", type=Path, help="also write medians, ratios and every sample here")
    parser.add_argument("--model", type=Path, default=MODEL, help=f"ONNX model (default {MODEL})")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be at least 1 and --warmup at least 0")

    import onnxruntime
    import ultralytics

    load_before = os.getloadavg()
    runs = build_runs(args.model)
    samples = measure(runs, args.iters, args.warmup)
    summary = {s.name: summarize(s, samples[s.name]) for s in SCENES}
    load_after = os.getloadavg()

    print(f"\n{args.model.name}, {args.iters} iterations after {args.warmup} warmup, medians; "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} -> {load_after[0]:.1f}; "
          f"onnxruntime {onnxruntime.__version__}, ultralytics {ultralytics.__version__}\n")
    print(markdown(summary))
    if args.json:
        report = {
            "model": str(args.model), "iters": args.iters, "warmup": args.warmup,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "onnxruntime": onnxruntime.__version__, "ultralytics": ultralytics.__version__,
                        "load_average": [load_before[0], load_after[0]]},
            "scenes": summary,
        }
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

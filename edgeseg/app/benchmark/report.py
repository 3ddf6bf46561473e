"""The benchmark report: one dict of every number (written as JSON) and the table printed in the terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...outputs.files import write_json
from .stats import paired_ratio, summarize

REPORT_FILE = "benchmark.json"
# edgeseg's stages that make up what Ultralytics calls postprocess, and its whole predict call
EDGESEG_POSTPROCESS = ("decode_nms", "masks")
EDGESEG_PREDICT = ("preprocess", "inference", "decode_nms", "masks")


def run_entry(contender, records: Sequence[dict[str, float]]) -> dict:
    """A report "runs" item from one contender's per-iteration records (ms per frame by stage)."""
    return {
        "name": contender.name, "kind": contender.kind, "model": contender.model, "provider": contender.provider,
        "device": contender.device,
        "objects_per_frame": sum(r["objects"] for r in records) / len(records),
        "stages": {stage: summarize([r[stage] for r in records]) for stage in contender.stages},
        "accuracy": None,  # box and mask mAP on a labelled dataset, when the benchmark is given one (val=)
    }


def comparable_samples(run: dict) -> dict[str, list[float]]:
    """A run's per-iteration ms for the stages edgeseg and Ultralytics both have: preprocess, inference,
    postprocess (edgeseg: decode_nms + masks) and total (edgeseg: its predict stages, without the contours,
    cut-outs and drawing that Ultralytics' predict does not do)."""
    stages = run["stages"]
    if run["kind"] != "edgeseg":
        return {s: stages[s]["samples"] for s in ("preprocess", "inference", "postprocess", "total")}

    def summed(names: tuple[str, ...]) -> list[float]:
        return [sum(values) for values in zip(*(stages[s]["samples"] for s in names), strict=True)]

    return {"preprocess": stages["preprocess"]["samples"], "inference": stages["inference"]["samples"],
            "postprocess": summed(EDGESEG_POSTPROCESS), "total": summed(EDGESEG_PREDICT)}


def speedups(runs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """"<edgeseg run> / <ultralytics run of the same model>" -> stage -> reference time / edgeseg time, each the
    median of the per-iteration ratios."""
    ratios = {}
    for run in runs:
        if run["kind"] != "edgeseg":
            continue
        for ref in runs:
            if ref["kind"] == "ultralytics" and ref["model"] == run["model"]:
                ours, theirs = comparable_samples(run), comparable_samples(ref)
                ratios[f"{run['name']} / {ref['name']}"] = {s: paired_ratio(theirs[s], ours[s]) for s in ours}
    return ratios


def overheads(runs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """"<edgeseg run> / <bare run of the same model and provider>" -> {"inference": edgeseg's inference stage,
    "predict": its predict stages (preprocess to masks)} / the bare runtime's time, each the median of the
    per-iteration ratios: what edgeseg adds to the network, frame by frame (1.0: nothing)."""
    ratios = {}
    for run in runs:
        if run["kind"] != "edgeseg":
            continue
        for bare in runs:
            if bare["kind"] == "bare" and (bare["model"], bare["provider"]) == (run["model"], run["provider"]):
                ours, floor = comparable_samples(run), bare["stages"]["inference"]["samples"]
                ratios[f"{run['name']} / {bare['name']}"] = {
                    "inference": paired_ratio(ours["inference"], floor), "predict": paired_ratio(ours["total"], floor)}
    return ratios


def build_report(version: str, machine: dict, settings: dict, runs: list[dict], video: dict | None) -> dict:
    return {"edgeseg_version": version, "machine": machine, "settings": settings, "runs": runs,
            "ratios": speedups(runs), "overheads": overheads(runs), "video": video, "cold_start": None,
            "memory": None, "plots": []}


def write_report(report: dict, out_dir: str | Path) -> Path:
    """Writes the report as out_dir/benchmark.json, atomically; a number that is not finite (a ratio over a stage
    that took no time, say) is written as null, which JSON readers understand."""
    return write_json(Path(out_dir) / REPORT_FILE, _finite(report))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_KERNELS = {"aot": "compiled at install", "jit": "compiled by Numba's JIT"}


def format_table(report: dict) -> str:
    """The report as the terminal shows it: machine, one row per run and stage, speedups, video throughput."""
    m, s = report["machine"], report["settings"]
    gpu = f", {m['gpu']}" if m["gpu"] else ", no GPU"
    openvino = f"openvino {m['versions']['openvino']}, " if m["versions"].get("openvino") else ""
    lines = [f"{m['cpu']} ({m['cores']} cores{gpu}); onnxruntime {m['versions']['onnxruntime']}, {openvino}"
             f"numba {m['versions']['numba']}, numpy {m['versions']['numpy']}",
             f"{s['source']}, {s['frames']} frames, batch {s['batch']}, {s['iters']} iterations after {s['warmup']} "
             "warmup; ms per frame", ""]
    width = max([len(r["name"]) for r in report["runs"]] + [3])
    header = f"{'run':<{width}}  {'stage':<11}" + "".join(f"{h:>9}" for h in
                                                          ("mean", "p50", "p90", "p99", "max", "fps"))
    lines += [header, "-" * len(header)]
    for run in report["runs"]:
        for k, (stage, st) in enumerate(run["stages"].items()):
            objects = f"  {run['objects_per_frame']:.1f} objects/frame" if run["kind"] != "bare" else ""
            label = run["name"] if k == 0 else (objects if k == 1 else "")
            lines.append(f"{label:<{width}}  {stage:<11}" + "".join(f"{st[key]:9.2f}" for key in
                                                                      ("mean", "p50", "p90", "p99", "max"))
                         + f"{st['fps']:9.1f}")
    if report["ratios"]:
        lines += ["", "speedup (Ultralytics time / edgeseg time, median of paired iterations; postprocess = "
                      "decode_nms + masks, total = predict without contours, cut-outs and drawing):"]
        for key, ratios in report["ratios"].items():
            lines.append(f"  {key}: " + ", ".join(f"{stage} {value:.2f}x" for stage, value in ratios.items()))
    if report.get("overheads"):
        lines += ["", "edgeseg against the bare runtime (edgeseg time / bare run, median of paired iterations; predict "
                      "= preprocess + inference + decode_nms + masks):"]
        for key, ratios in report["overheads"].items():
            lines.append(f"  {key}: inference {ratios['inference']:.2f}x, predict {ratios['predict']:.2f}x")
    if report["video"]:
        v = report["video"]
        lines += ["", f"video, {v['frames']} frames: pipelined {v['pipelined_fps']:.1f} fps, "
                      f"sequential {v['sequential_fps']:.1f} fps ({v['pipelined_fps'] / v['sequential_fps']:.2f}x)"]
    lines += _accuracy_lines(report)
    lines += _cold_start_lines(report.get("cold_start") or [])
    lines += _memory_lines(report.get("memory") or [])
    return "\n".join(lines)


def _accuracy_lines(report: dict) -> list[str]:
    """Each scored run's mAP, and its mask mAP50-95 against the first scored run's (FP32 beside INT8, say)."""
    scored = [run for run in report["runs"] if run.get("accuracy")]
    if not scored:
        return []
    first = scored[0]["accuracy"]
    width = max(len(run["name"]) for run in scored)
    lines = ["", f"accuracy on {report['settings'].get('val')} ({first['images']} images, {first['instances']} objects;"
                 " edgeseg val: conf 0.001, multi-label NMS):",
             f"  {'run':<{width}}  {'mask mAP50-95':>13} {'mAP50':>7} {'box mAP50-95':>13} {'mAP50':>7} "
             f"{'mask mAP50-95 - first':>22}"]
    for run in scored:
        a = run["accuracy"]
        change = round(a["mask_map50_95"] - first["mask_map50_95"], 4) + 0.0  # + 0.0: no "-0.0000"
        lines.append(f"  {run['name']:<{width}}  {a['mask_map50_95']:13.4f} {a['mask_map50']:7.4f} "
                     f"{a['box_map50_95']:13.4f} {a['box_map50']:7.4f} {change:+22.4f}")
    return lines


def _cold_start_lines(entries: list[dict]) -> list[str]:
    lines = [""] if entries else []
    for c in entries:
        jit = (f"; with Numba's JIT {c['edgeseg_jit_warm_cache_s']:.2f} s from its cache, "
               f"{c['edgeseg_jit_cold_cache_s']:.2f} s compiling" if c["edgeseg_jit_warm_cache_s"] is not None else "")
        ultralytics = f", Ultralytics {c['ultralytics_s']:.2f} s" if c["ultralytics_s"] is not None else ""
        lines.append(f"cold start to the first result (fresh processes), {c['model']} on {c['backend']}: {c['bare']} "
                     f"{c['bare_session_s']:.2f} s, edgeseg {c['edgeseg_s']:.2f} s ({c['ratio_to_bare']:.2f}x bare, "
                     f"kernels {_KERNELS.get(c['kernels'], c['kernels'])}){jit}{ultralytics}")
    return lines


def _memory_lines(entries: list[dict]) -> list[str]:
    lines = []
    for mem in entries:
        growth = mem.get("edgeseg_growth_mib_per_1000_frames")
        growth = f"; growth {growth:.1f} MiB per 1000 frames" if growth is not None else ""
        where, bare = f"{mem['model']} on {mem['backend']}", mem["bare"]
        for label, suffix, ratio in (("first result", "peak_mib", "ratio_to_bare"),
                                     (f"after {mem['frames']} frames", "long_peak_mib", "ratio_long_to_bare")):
            ultralytics = mem.get(f"ultralytics_{suffix}")
            ultralytics = f", Ultralytics {ultralytics:.0f} MiB" if ultralytics else ""
            lines.append(f"peak memory, {where}, {label}: {bare} {mem[f'bare_session_{suffix}']:.0f} MiB, edgeseg "
                         f"{mem[f'edgeseg_{suffix}']:.0f} MiB ({mem[ratio]:.2f}x bare){ultralytics}")
        lines[-1] += growth
    return lines

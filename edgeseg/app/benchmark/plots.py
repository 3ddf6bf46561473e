"""PNG charts of an `edgeseg benchmark` report: latency per stage, stage breakdown, speedups, accuracy against speed,
cold start and memory.

matplotlib is an optional extra (`pip install "edgeseg[plots]"`): it is imported only when plots are asked for.
"""

from __future__ import annotations

import statistics
from io import BytesIO
from pathlib import Path
from typing import Any

from ...outputs.files import write_bytes
from .report import comparable_samples

DPI = 100
TOTAL = "total"
# every file write_plots may write, in its order
PLOT_FILES = ("latency.png", "breakdown.png", "speedup.png", "accuracy.png", "cold_start.png", "memory.png")
LATENCY, BREAKDOWN, SPEEDUP, ACCURACY, COLD_START, MEMORY = PLOT_FILES


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plots need matplotlib: pip install "edgeseg[plots]" (or pip install matplotlib)') from None
    matplotlib.use("Agg")  # files only, no window: works on a headless machine
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Renders to memory first, so the file appears whole or not at all."""
    buffer = BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def _stage_names(runs: list[dict[str, Any]], with_total: bool) -> list[str]:
    """Every stage of every run, in first-seen order (the pipeline's order)."""
    names: list[str] = []
    for run in runs:
        names += [s for s in run.get("stages", {}) if s not in names and (with_total or s != TOTAL)]
    return names


def _latency(plt: Any, runs: list[dict[str, Any]], path: Path) -> Path | None:
    """(a) Box plot of the per-frame samples of each stage, one panel per run."""
    runs = [r for r in runs if any(s.get("samples") for s in r.get("stages", {}).values())]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.2 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        stages = [(name, s["samples"]) for name, s in run["stages"].items() if s.get("samples")]
        ax.boxplot([samples for _, samples in stages], showfliers=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(stages) + 1), [name for name, _ in stages])  # the pipeline's order
        ax.set_yscale("log")  # inference and a mask stage differ by orders of magnitude
        ax.set_ylabel("ms per frame (log scale)")
        ax.set_title(f"{run['name']}: latency per stage ({run.get('provider', '?')})")
        ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def _breakdown(plt: Any, runs: list[dict[str, Any]], path: Path) -> Path | None:
    """(b) Mean ms per stage, stacked into one bar per run ("total" left out: it is the whole bar)."""
    stages = _stage_names(runs, with_total=False)
    if not runs or not stages:
        return None
    fig, ax = plt.subplots(figsize=(10, max(3.0, 1.2 + 0.7 * len(runs))))
    colors = plt.get_cmap("tab10" if len(stages) <= 10 else "tab20")
    names = [run["name"] for run in runs]
    left = [0.0] * len(runs)
    for i, stage in enumerate(stages):
        widths = [run["stages"].get(stage, {}).get("mean", 0.0) for run in runs]
        ax.barh(names, widths, left=left, label=stage, color=colors(i))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, (run, end) in enumerate(zip(runs, left, strict=True)):
        total = run["stages"].get(TOTAL, {}).get("mean")
        ax.text(end, y, f"  {total if total is not None else end:.1f} ms", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.2 or 1)
    ax.set_xlabel("mean time per frame (ms)")
    ax.set_title("Where the time goes: mean ms per stage")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)  # beside the bars: never over them
    return _save(plt, fig, path)


def _speedup(plt: Any, ratios: dict[str, dict[str, float]], path: Path) -> Path | None:
    """(c) The report's ratios per stage, one group of bars per comparison, with a dashed line at 1x."""
    ratios = {name: r for name, r in (ratios or {}).items() if r}
    if not ratios:
        return None
    stages: list[str] = []
    for r in ratios.values():
        stages += [s for s in r if s not in stages]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(stages) * max(1, len(ratios)) ** 0.5 + 2), 4.5))
    width = 0.8 / len(ratios)
    for i, (name, r) in enumerate(ratios.items()):
        xs = [j + (i - (len(ratios) - 1) / 2) * width for j in range(len(stages))]
        ys = [r.get(s, float("nan")) for s in stages]
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=[f"{y:.2g}x" if y == y else "" for y in ys], fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="1x (same speed)")
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("ratio (x)")
    ax.set_title("Comparison per stage")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _bars(plt: Any, values: dict[str, float | None], unit: str, title: str, path: Path,
          reference: str | None = None) -> Path | None:
    """(d) One bar per measured quantity (None: not measured, left out); a dashed line at the reference's value."""
    values = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    if not values:
        return None
    longest = max(len(label) for label in values)  # the labels take the left of the figure: room for them
    fig, ax = plt.subplots(figsize=(max(8.0, 5.0 + 0.085 * longest), 1.2 + 0.6 * len(values)))
    bars = ax.barh(list(values), list(values.values()), color="tab:blue")
    ax.bar_label(bars, labels=[f" {v:.3g} {unit}" for v in values.values()], fontsize=9)
    if reference in values:
        ax.axvline(values[reference], color="black", linestyle="--", linewidth=1, label=reference)
        ax.legend(fontsize=8, loc="lower right")
    ax.invert_yaxis()
    ax.set_xlim(0, max(values.values()) * 1.25 or 1)
    ax.set_xlabel(unit)
    ax.set_title(title)
    return _save(plt, fig, path)


def _accuracy(plt: Any, runs: list[dict[str, Any]], path: Path) -> Path | None:
    """(e) Mask mAP50-95 against ms per frame of predict (preprocess to masks, median), one point per scored run:
    the trade-off of FP32, FP16 and INT8 on each backend at a glance."""
    scored = [run for run in runs if run.get("accuracy") and run.get("kind") == "edgeseg"]
    if not scored:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in scored:
        x = statistics.median(comparable_samples(run)["total"])
        y = run["accuracy"]["mask_map50_95"]
        ax.scatter([x], [y], s=40)
        ax.annotate(run["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("predict, ms per frame (median; preprocess to masks)")
    ax.set_ylabel("mask mAP50-95")
    ax.set_title("Accuracy against speed")
    ax.grid(alpha=0.3)
    ax.margins(x=0.3)
    # runs that score alike must look alike, not spread over an axis a millionth of a point wide
    scores = [run["accuracy"]["mask_map50_95"] for run in scored]
    middle, half = (max(scores) + min(scores)) / 2, max((max(scores) - min(scores)) * 0.7, 0.01)
    ax.set_ylim(middle - half, middle + half)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    return _save(plt, fig, path)


def _per_backend(entries: list[dict[str, Any]], values: Any) -> dict[str, float | None]:
    """The bars of every cold-start or memory entry: values(entry) -> {label: value}, each label prefixed by the
    entry's model and backend when there are several."""
    several_models = len({e["model"] for e in entries}) > 1
    several_backends = len({e["backend"] for e in entries}) > 1
    bars: dict[str, float | None] = {}
    for entry in entries:
        where = " on ".join([entry["model"]] * several_models + [entry["backend"]] * several_backends)
        bars.update({f"{where}: {label}" if where else label: value for label, value in values(entry).items()})
    return bars


def write_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Writes the report's charts as PNG files into `out_dir`; returns the paths written, in order: latency.png,
    breakdown.png, then speedup.png, accuracy.png, cold_start.png, memory.png where the report holds that data.
    Raises ImportError (with the install command) when matplotlib is missing."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    runs = report.get("runs") or []
    written = [
        _latency(plt, runs, out_dir / LATENCY),
        _breakdown(plt, runs, out_dir / BREAKDOWN),
        _speedup(plt, report.get("ratios") or {}, out_dir / SPEEDUP),
        _accuracy(plt, runs, out_dir / ACCURACY),
    ]
    cold = report.get("cold_start") or []
    if cold:
        bars = _per_backend(cold, lambda c: {
            c["bare"]: c["bare_session_s"],
            f"edgeseg ({c['kernels']} kernels)": c["edgeseg_s"],
            "edgeseg, JIT, warm Numba cache": c["edgeseg_jit_warm_cache_s"],
            "edgeseg, JIT, empty Numba cache": c["edgeseg_jit_cold_cache_s"],
            "Ultralytics": c["ultralytics_s"],
        })
        written.append(_bars(plt, bars, "s", "Cold start: new process to first result", out_dir / COLD_START,
                             next(iter(bars))))
    memory = report.get("memory") or []
    if memory:
        def peaks(m: dict[str, Any]) -> dict[str, float | None]:
            values = {}
            for label, suffix in (("first result", "peak_mib"), (f"{m['frames']} frames", "long_peak_mib")):
                values.update({f"{m['bare']}, {label}": m[f"bare_session_{suffix}"],
                               f"edgeseg, {label}": m[f"edgeseg_{suffix}"],
                               f"Ultralytics, {label}": m[f"ultralytics_{suffix}"]})
            return values

        bars = _per_backend(memory, peaks)
        written.append(_bars(plt, bars, "MiB", "Peak resident memory", out_dir / MEMORY, next(iter(bars))))
    return [p for p in written if p is not None]

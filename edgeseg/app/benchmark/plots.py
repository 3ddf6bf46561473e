"""PNG charts of an `edgeseg benchmark` report: latency per stage, stage breakdown, speedups, cold start, memory.

matplotlib is an optional extra (`pip install "edgeseg[plots]"`): it is imported only when plots are asked for.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from ...outputs.files import write_bytes

DPI = 100
TOTAL = "total"


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
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * len(values)))
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


def write_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Writes the report's charts as PNG files into `out_dir`; returns the paths written, in order: latency.png,
    breakdown.png, then speedup.png, cold_start.png, memory.png where the report holds that data.
    Raises ImportError (with the install command) when matplotlib is missing."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    runs = report.get("runs") or []
    written = [
        _latency(plt, runs, out_dir / "latency.png"),
        _breakdown(plt, runs, out_dir / "breakdown.png"),
        _speedup(plt, report.get("ratios") or {}, out_dir / "speedup.png"),
    ]
    cold = report.get("cold_start")
    if cold:
        written.append(_bars(plt, {
            "bare onnxruntime session": cold.get("bare_session_s"),
            f"edgeseg ({cold.get('kernels', '?')} kernels)": cold.get("edgeseg_s"),
            "edgeseg, JIT, warm Numba cache": cold.get("edgeseg_jit_warm_cache_s"),
            "edgeseg, JIT, empty Numba cache": cold.get("edgeseg_jit_cold_cache_s"),
            "Ultralytics": cold.get("ultralytics_s"),
        }, "s", "Cold start: new process to first result", out_dir / "cold_start.png", "bare onnxruntime session"))
    memory = report.get("memory")
    if memory:
        frames = memory.get("frames", "?")
        peaks = {}
        for label, suffix in (("first result", "peak_mib"), (f"{frames} frames", "long_peak_mib")):
            peaks.update({f"bare onnxruntime session, {label}": memory.get(f"bare_session_{suffix}"),
                          f"edgeseg, {label}": memory.get(f"edgeseg_{suffix}"),
                          f"Ultralytics, {label}": memory.get(f"ultralytics_{suffix}")})
        written.append(_bars(plt, peaks, "MiB", "Peak resident memory", out_dir / "memory.png",
                             "bare onnxruntime session, first result"))
    return [p for p in written if p is not None]

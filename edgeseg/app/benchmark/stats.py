"""Summary statistics of latency samples: mean, percentiles, max and frames per second, in milliseconds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError

PERCENTILES = (50, 90, 99)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, interpolated linearly between the two nearest ranks: the same
    number as np.percentile(samples, q) with its default method ("linear")."""
    if not 0 <= q <= 100:
        raise ConfigError(f"a percentile must lie in 0..100, got {q}")
    ordered = sorted(float(v) for v in samples)
    if not ordered:
        raise ConfigError("no samples to take a percentile of")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    a, b = ordered[low], ordered[min(low + 1, len(ordered) - 1)]
    t = rank - low
    # from the nearer end, as NumPy does, so that the result stays within [a, b] despite rounding
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def summarize(samples_ms: Sequence[float]) -> dict:
    """{"mean", "p50", "p90", "p99", "max"} in ms, "fps" (1000 / mean) and the "samples" themselves."""
    values = [float(v) for v in np.asarray(samples_ms, dtype=np.float64).ravel()]
    if not values:
        raise ConfigError("no samples to summarize")
    mean = statistics.fmean(values)
    summary = {"mean": mean, **{f"p{q}": percentile(values, q) for q in PERCENTILES}, "max": max(values)}
    summary["fps"] = 1e3 / mean if mean > 0 else math.inf
    summary["samples"] = values
    return summary


def paired_ratio(reference_ms: Sequence[float], ours_ms: Sequence[float]) -> float:
    """Median of the per-iteration ratios reference / ours: how many times faster `ours` is. Each pair was
    measured moments apart, so the machine's drift cancels in the ratio."""
    if len(reference_ms) != len(ours_ms) or not len(ours_ms):
        raise ConfigError(f"paired samples must have the same, non-zero length: {len(reference_ms)} and {len(ours_ms)}")
    return statistics.median(r / o if o > 0 else math.inf for r, o in zip(reference_ms, ours_ms, strict=True))

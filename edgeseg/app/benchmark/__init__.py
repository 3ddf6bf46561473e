"""`edgeseg benchmark`: per-stage latency of edgeseg (and Ultralytics, interleaved) on this machine, as a report."""

from .run import run_benchmark
from .stats import percentile, summarize

__all__ = ["percentile", "run_benchmark", "summarize"]

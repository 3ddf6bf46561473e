"""What machine a benchmark ran on: CPU model, cores, GPU, platform and the versions that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The GPUs nvidia-smi lists ("NVIDIA H100 80GB HBM3, driver 550.54"), or None without nvidia-smi or a GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [", driver ".join(part.strip() for part in line.split(",", 1)) for line in out.splitlines() if line.strip()]
    return "; ".join(gpus) or None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict:
    """The report's "machine" entry."""
    import cv2
    import numba
    import numpy
    import onnxruntime

    from ... import __version__
    from ...kernels.jit import MODE

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kernels": MODE,  # "aot": compiled at install; "jit": compiled by Numba in the process
        "versions": {"edgeseg": __version__, "onnxruntime": onnxruntime.__version__, "numba": numba.__version__,
                     "numpy": numpy.__version__, "opencv": cv2.__version__,
                     "openvino": package_version("openvino"), "ultralytics": package_version("ultralytics")},
    }

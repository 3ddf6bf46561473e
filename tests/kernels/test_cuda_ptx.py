"""The GPU path's kernels, compiled by NVVM for real GPUs (sm_90, sm_87), with the argument types a run of the GPU path
launches them with, and no float32 multiply-add fused into one rounding. No GPU is needed (tests/helpers/cuda_ptx.py);
without NVVM (the CUDA toolkit's compiler) the test is skipped. This is what the simulator cannot check: the real-GPU
build of every kernel. It still does not run them."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "cuda_ptx.py"
NO_NVVM = 77


def _run(*args: str, simulator: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


def test_every_cuda_kernel_compiles_for_real_gpus_without_fused_products(tmp_path):
    signatures = tmp_path / "signatures.pkl"
    recorded = _run("record", str(signatures), simulator=True)  # fails if some kernel never launched
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    compiled = _run("compile", str(signatures), simulator=False)
    if compiled.returncode == NO_NVVM:
        pytest.skip("NVVM, the CUDA toolkit's compiler that Numba uses, is not on this machine")
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    summary = json.loads(compiled.stdout.strip().splitlines()[-1])
    control = summary.pop("control.multiply_add")
    assert control["fma"] > 0  # NVVM does fuse a plain a * b + c: a count of 0 below is not for lack of looking
    launched = {f"{module.rpartition('.')[2]}.{name}" for module, name, _ in pickle.loads(signatures.read_bytes())}
    assert len(launched) >= 10 and set(summary) == launched  # every kernel (the recorder checks it launched)
    for name, counts in summary.items():
        assert counts["signatures"] >= 2, name  # each launch signature, for both GPUs
        assert counts["fma"] == 0, name  # every product rounded on its own, as on the CPU
    for name in ("masks._logits", "masks._threshold", "masks._threshold_upsampled"):
        assert summary[name]["mul_rn"] > 0, name  # the products go through libdevice's __fmul_rn

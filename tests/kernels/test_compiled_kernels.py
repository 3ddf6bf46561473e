"""edgeseg.kernels.jit: the kernels compiled at install are the ones in use, stale ones never are, and the JIT path
(an install that could not compile them) passes the same kernel tests."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg.errors import ConfigError, KernelError
from edgeseg.kernels import jit

KERNEL_TESTS = Path(__file__).parent
REQUESTED = os.environ.get("EDGESEG_KERNELS", "auto")


@pytest.mark.skipif(REQUESTED == "jit", reason="EDGESEG_KERNELS=jit asks for Numba's JIT")
def test_install_compiled_every_entry_point():
    assert jit.MODE == "aot", "the install did not compile the kernels: see the setup.py lines of `pip install -e .`"
    compiled = jit._COMPILED
    assert compiled.source_digest() == jit.source_digest()
    for module in jit.KERNEL_MODULES:  # each registers its entry points as it is imported
        importlib.import_module(f"edgeseg.kernels.{module}")
    assert len(jit.ENTRIES) >= 9
    for name in jit.ENTRIES:
        assert callable(getattr(compiled, name)), name


def test_each_entry_point_is_exported_under_its_module_and_name():
    assert "masks_masks_in_boxes" in jit.ENTRIES and "nms_nms" in jit.ENTRIES
    for name, (func, signature) in jit.ENTRIES.items():
        assert jit.export_name(func) == name
        assert signature.count("(") >= 1 and not signature.startswith("(")  # a return type, then the arguments


def test_stale_compiled_kernels_are_never_used(monkeypatch):
    monkeypatch.setattr(jit, "source_digest", lambda: 12345)  # as if a kernel's source changed after the build
    if jit._COMPILED is not None:
        module, why_not, stale = jit._load_compiled()
        assert module is None and stale and "pip install -e ." in why_not
    monkeypatch.setenv("EDGESEG_KERNELS", "aot")
    mode, module, error = jit._resolve_mode()
    assert (mode, module) == ("unavailable", None)
    assert isinstance(error, KernelError) and "EDGESEG_KERNELS=aot" in str(error)
    monkeypatch.setenv("EDGESEG_KERNELS", "auto")
    if jit._COMPILED is not None:
        with pytest.warns(UserWarning, match="other sources"):
            assert jit._resolve_mode() == ("jit", None, None)


def test_jit_mode_is_chosen_without_loading_the_compiled_module(monkeypatch):
    monkeypatch.setenv("EDGESEG_KERNELS", "jit")
    assert jit._resolve_mode() == ("jit", None, None)


def test_unknown_mode_is_a_config_error(monkeypatch):
    monkeypatch.setenv("EDGESEG_KERNELS", "fast")
    mode, _, error = jit._resolve_mode()
    assert mode == "unavailable" and isinstance(error, ConfigError) and "'auto', 'aot' or 'jit'" in str(error)


def test_cli_says_what_is_wrong_with_the_kernels_in_one_line(shapes_onnx, val_images, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeseg", "predict", "--model", str(shapes_onnx), "--source",
                           str(val_images[0]), "--save-dir", str(out)], capture_output=True, text=True,
                          env={**os.environ, "EDGESEG_KERNELS": "fast"}, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "edgeseg: error: EDGESEG_KERNELS must be 'auto', 'aot' or 'jit', got 'fast'"]
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_a_refused_kernel_raises_the_recorded_error(monkeypatch):
    monkeypatch.setattr(jit, "_ERROR", KernelError("EDGESEG_KERNELS=aot, but no module"))
    refused = jit._refuse(lambda image, out: None)
    with pytest.raises(KernelError, match="no module"):
        refused(1, 2)


@pytest.mark.skipif(REQUESTED == "jit", reason="this run already uses the JIT")
def test_kernel_tests_pass_under_numbas_jit():
    # what runs where the install could not compile the kernels: the same tests, Numba compiling on first call
    env = {**os.environ, "EDGESEG_KERNELS": "jit"}
    # (the PTX test compiles only CUDA kernels: nothing of the CPU kernels' compilation to see there)
    skip = {Path(__file__).name, "test_cuda_ptx.py"}
    others = sorted(str(p) for p in KERNEL_TESTS.glob("test_*.py") if p.name not in skip)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *others],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout

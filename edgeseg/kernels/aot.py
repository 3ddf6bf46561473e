"""Compiles every kernel entry point ahead of time into one extension module (setup.py calls this at install).

The module exports each entry under jit.export_name with the signature its @kernel declares, plus
`source_digest()`, the digest of the sources it was built from; jit.py uses it only when that digest is the installed
sources' own. It is built with the JIT's flags and loads without Numba.

Run by hand to rebuild next to the sources (what an editable install does):

    EDGESEG_KERNELS=jit python -m edgeseg.kernels.aot
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from pathlib import Path

from . import jit as jit_module


@contextlib.contextmanager
def _jit_flags():
    """numba.pycc compiles with Numba's default flags and offers no way to pass others: the GIL held for the whole
    call and Python's error model (float division by zero raises). Its compiler gets the JIT's flags instead."""
    from numba.core.compiler import Flags
    from numba.pycc import compiler

    class KernelFlags(Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = jit_module.JIT_OPTIONS["nogil"]
            self.error_model = jit_module.JIT_OPTIONS["error_model"]
            self.fastmath = jit_module.JIT_OPTIONS["fastmath"]

    original = compiler.Flags
    compiler.Flags = KernelFlags
    try:
        yield
    finally:
        compiler.Flags = original


def compile_kernels(output_dir: str | Path, output_file: str | None = None, target_cpu: str | None = None,
                    verbose: bool = False) -> Path:
    """Builds the compiled module into `output_dir` (file name `output_file`, by default the platform's extension name
    for jit.AOT_MODULE) for `target_cpu` (default: EDGESEG_AOT_CPU, else "host", the CPU building it: pass a generic
    name such as "x86-64-v2" for a module that must run on other machines). Returns the module's path."""
    if jit_module.MODE != "jit":
        raise RuntimeError("compile the kernels with EDGESEG_KERNELS=jit: the entry points must be Numba functions")
    from numba.pycc import CC

    for name in jit_module.KERNEL_MODULES:  # each @kernel registers itself in jit.ENTRIES on import
        importlib.import_module(f"{__package__}.{name}")
    cc = CC(jit_module.AOT_MODULE)
    cc.output_dir = str(output_dir)
    if output_file:
        cc.output_file = output_file
    cc.target_cpu = target_cpu or os.environ.get("EDGESEG_AOT_CPU", "host")
    cc.verbose = verbose
    for name, (func, signature) in jit_module.ENTRIES.items():
        cc.export(name, signature)(func)
    digest = jit_module.source_digest()
    cc.export(jit_module.DIGEST_FUNCTION, "int64()")(lambda: digest)
    with _jit_flags():
        cc.compile()
    return Path(cc.output_dir) / cc.output_file


def main() -> None:
    start = time.perf_counter()
    path = compile_kernels(Path(__file__).parent, verbose="-v" in sys.argv)
    print(f"compiled {len(jit_module.ENTRIES)} kernels into {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

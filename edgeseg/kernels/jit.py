"""The one place where edgeseg's kernels are compiled: ahead of time when the package was installed, or by Numba's JIT.

Installing edgeseg (`pip install .`) compiles every kernel entry point into the extension module `_aot` (see aot.py
and setup.py). Loading it takes under a millisecond and never imports Numba, which otherwise costs a process about
0.5 s and 100 MiB before its first result (importing Numba, then bringing up its LLVM code generator on the first
call, even with every kernel in the on-disk cache).

EDGESEG_KERNELS chooses: "aot" (the compiled module; every kernel call raises KernelError if it is missing or stale),
"jit" (Numba compiles on first call, caching on disk) or "auto" (the default: "aot" when the module is there and was
built from these very sources, else "jit"). A module built from other sources than the installed ones is never used: its
code would not be the code on disk.

Compile flags, the same for both: nogil (a pipeline thread post-processes while another runs the network), fastmath
off (results must match Ultralytics' float32 arithmetic to the pixel), NumPy's error model (float division by zero
gives inf, as in NumPy), and on-disk caching for the JIT.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

JIT_OPTIONS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

# The modules that define kernel entry points. Their source, with this file's, is what a compiled module must match.
KERNEL_MODULES = ("blend", "isolate", "masks", "nms", "preprocess", "raster")

AOT_MODULE = "_aot"
DIGEST_FUNCTION = "source_digest"

# export name -> (Python function, Numba signature) of every entry point, in definition order
ENTRIES: dict[str, tuple[Callable, str]] = {}

log = logging.getLogger(__name__)


def source_digest() -> int:
    """A signed 64-bit digest of the kernel sources: the compiled module returns the one it was built from."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("jit", *KERNEL_MODULES):
        digest.update((here / f"{name}.py").read_bytes())
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def _load_compiled() -> tuple[Any, str, bool]:
    """The compiled module, or None, why it cannot be used and whether it is there but stale."""
    try:
        module = importlib.import_module(f"{__package__}.{AOT_MODULE}")
    except ImportError as e:
        return None, f"edgeseg's kernels were not compiled at install time ({e})", False
    if getattr(module, DIGEST_FUNCTION)() != source_digest():
        return None, ("edgeseg's compiled kernels were built from other sources than the installed ones "
                      "(reinstall edgeseg, e.g. `pip install -e .`, to rebuild them)"), True
    return module, "", False


def _resolve_mode() -> tuple[str, Any, Exception | None]:
    """(mode, compiled module or None, the error every kernel call raises instead, or None)."""
    wanted = os.environ.get("EDGESEG_KERNELS", "auto").strip().lower()
    if wanted not in ("auto", "aot", "jit"):
        from ..errors import ConfigError  # here only: the build loads this package without the rest of edgeseg

        return "unavailable", None, ConfigError(f"EDGESEG_KERNELS must be 'auto', 'aot' or 'jit', got {wanted!r}")
    if wanted == "jit":
        return "jit", None, None
    module, why_not, stale = _load_compiled()
    if module is not None:
        return "aot", module, None
    if wanted == "aot":
        from ..errors import KernelError

        return "unavailable", None, KernelError(f"EDGESEG_KERNELS=aot, but {why_not}")
    if stale:
        warnings.warn(f"{why_not}; using Numba's JIT meanwhile", stacklevel=2)
    else:
        log.info("%s; Numba's JIT compiles them on first use", why_not)
    return "jit", None, None


# A bad request is not raised here, at import, but by each kernel call: the command line turns it into its one-line
# error, which it could not do for an error raised while `import edgeseg` runs.
MODE, _COMPILED, _ERROR = _resolve_mode()

if MODE == "jit":
    import numba


def require_kernels() -> None:
    """Raises what every kernel call would raise (a bad EDGESEG_KERNELS): the Segmenter says so before loading a
    model."""
    if _ERROR is not None:
        raise _ERROR


def _refuse(func: Callable) -> Callable:
    def refused(*args: Any) -> Any:
        raise _ERROR

    refused.__name__ = func.__name__
    return refused


def export_name(func: Callable) -> str:
    """The entry point's name in the compiled module: its module and function, e.g. masks_masks_in_boxes."""
    return f"{func.__module__.rpartition('.')[2]}_{func.__name__.lstrip('_')}"


def jit(func: Callable) -> Callable:
    """Decorator for kernel helpers, called only from other kernels (compiled into them ahead of time)."""
    return numba.njit(**JIT_OPTIONS)(func) if MODE == "jit" else func


def kernel(signature: str) -> Callable[[Callable], Callable]:
    """Decorator for a kernel entry point, called from Python by its wrapper with exactly `signature`'s types
    (Numba's notation, e.g. "void(float32[:, ::1], int64)": the wrapper makes its arrays C-contiguous)."""

    def decorate(func: Callable) -> Callable:
        name = export_name(func)
        ENTRIES[name] = (func, signature)
        if MODE == "aot":
            return getattr(_COMPILED, name)
        if MODE == "unavailable":
            return _refuse(func)
        return numba.njit(**JIT_OPTIONS)(func)

    return decorate

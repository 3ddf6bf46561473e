"""Builds edgeseg's kernels ahead of time at install (everything else is in pyproject.toml).

The kernels package is loaded on its own, under a private name: the rest of edgeseg (ONNX Runtime, OpenCV) is not in
the build environment, only Numba and NumPy (pyproject's build-system requires). Should compiling fail (no C
compiler, say), the install goes on without the compiled module and says so; edgeseg then compiles the kernels with
Numba's JIT on first use, and EDGESEG_KERNELS=aot turns that into an error.
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path(__file__).resolve().parent / "edgeseg" / "kernels"


def _kernels_package():
    os.environ["EDGESEG_KERNELS"] = "jit"
    name = "_edgeseg_kernels_build"
    spec = importlib.util.spec_from_file_location(name, KERNELS / "__init__.py",
                                                  submodule_search_locations=[str(KERNELS)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.aot")


class BuildKernels(build_ext):
    """build_ext for the one extension: Numba's pycc writes it, not a C compiler run on sources."""

    def build_extension(self, ext):
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Numba caches the helpers it compiles on the way beside their sources, keyed to this private package
            # name, which the installed package could not import: they go to a throwaway folder instead
            with tempfile.TemporaryDirectory(prefix="edgeseg-build-numba-") as cache:
                os.environ["NUMBA_CACHE_DIR"] = cache
                path = _kernels_package().compile_kernels(target.parent, target.name)
        except Exception as e:
            print(f"edgeseg: WARNING: the kernels were not compiled ahead of time ({type(e).__name__}: {e}); "
                  "Numba will compile them on first use instead", file=sys.stderr)
            return
        print(f"edgeseg: compiled the kernels into {path}")


setup(
    ext_modules=[Extension("edgeseg.kernels._aot", sources=[])],
    cmdclass={"build_ext": BuildKernels},
)

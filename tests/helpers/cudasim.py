"""Numba's CUDA simulator for the tests of the GPU path, on machines without a GPU.

NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first imported, and Numba reads the environment again before
each compilation, so once set it stays set for the rest of the test process. Nothing else in the tests imports
numba.cuda, and the CPU kernels never read the variable; subprocesses inherit it, which changes nothing for them
unless they import numba.cuda (the test of the missing-GPU error removes it).

EDGESEG_TEST_CUDA=gpu runs the same tests on the machine's real GPU instead.
"""

from __future__ import annotations

import os
import sys


def use_simulator() -> bool:
    """Turns the simulator on (before numba.cuda is imported); False when the tests run on a real GPU."""
    if os.environ.get("EDGESEG_TEST_CUDA") == "gpu":
        return False
    from numba.core import config

    if "numba.cuda" in sys.modules and not config.ENABLE_CUDASIM:
        raise RuntimeError("numba.cuda was imported without the simulator before the GPU-path tests: they cannot "
                           "switch it on any more (set NUMBA_ENABLE_CUDASIM=1, or EDGESEG_TEST_CUDA=gpu on a GPU)")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    config.reload_config()
    return True

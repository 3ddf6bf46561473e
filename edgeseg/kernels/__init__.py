"""Every Numba kernel of edgeseg: private @jit loops, each behind one public wrapper that checks its inputs."""

"""CUDA kernels (numba.cuda) of the GPU path: private @cuda.jit loops, each behind one public wrapper that checks its
inputs, with the same arithmetic as the CPU kernel beside it in edgeseg/kernels/.

Nothing here is imported by `import edgeseg`: importing a submodule imports numba.cuda, which only the GPU path
(Segmenter(device="cuda"), see edgeseg/gpu.py) does.
"""

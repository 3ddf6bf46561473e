"""Network outputs -> boxes and source-resolution masks: with the CPU kernels (cpu.py), or on the GPU with numba.cuda
(cuda.py, and gpu.py for CUDA checks and other libraries' GPU memory)."""

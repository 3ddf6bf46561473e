#!/usr/bin/env bash
# The GPU path's checks for a session that is lent a GPU machine (the `device` tool), in ONE call: the lease is
# 15 minutes of device time in all, and each start costs one or two of them.
#
#   bash benchmarks/gpu_check.sh prepare   # here, first: the Ultralytics wheel the GPU machine lacks, into .whl/
#   device run, carry [".whl"], timeout_s 540:
#       bash benchmarks/gpu_check.sh run   # there: writes $OUT/gpu_check.log, compare_gpu.txt and benchmark.json
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh run   # here, without a GPU: the same steps on Numba's CUDA
#                                                      # simulator, tiny sizes (checks this script, times nothing)
#
# Steps: the CUDA kernel and GPU-path tests on the real GPU (EDGESEG_TEST_CUDA=gpu), then compare_gpu.py (the
# issue's 20 and 100 objects at 1920x1080 against the CPU kernels and Ultralytics' PyTorch post-processing on the
# same GPU), then `edgeseg benchmark --devices cpu,cuda` on the demo model. The GPU machine has PyTorch, CuPy,
# numba-cuda, OpenCV and the CPU onnxruntime, but no Ultralytics: its wheel travels in .whl/. edgeseg runs from the
# checkout (PYTHONPATH) with its CPU kernels under Numba's JIT: nothing is installed there.
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
  version=$(python -c "import ultralytics; print(ultralytics.__version__)") || { echo "install the dev extra first"; exit 1; }
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl "ultralytics==$version"
  ls -l .whl
  ;;
run)
  OUT=${OUT:-$(mktemp -d)}
  export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 EDGESEG_KERNELS=jit PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH="$PYTHONPATH:/tmp/site"
  fi
  if [ -n "${GPU_CHECK_DRY:-}" ]; then
    export NUMBA_ENABLE_CUDASIM=1
    tests=(tests/kernels/test_cuda_workspace.py)
    compare=(--dry-run --objects 3 --size 128x96 --imgsz 64 --iters 1 --warmup 0)
    bench=(--synthetic 128x96 --objects 3 --warmup 0 --iters 1)
  else
    export EDGESEG_TEST_CUDA=gpu
    tests=(tests/kernels/test_cuda_kernels.py tests/kernels/test_cuda_workspace.py tests/postprocess/test_gpu_path.py)
    compare=()
    bench=(--synthetic 1920x1080 --objects 20 --warmup 20 --iters 200)
  fi
  {
    date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    python3 -c "from importlib import metadata as m
print(*(f'{p} {m.version(p)}' for p in ('numba', 'numba-cuda', 'torch', 'onnxruntime', 'ultralytics')
        if p in {d.metadata['Name'] for d in m.distributions()}))" 2>&1
    echo "== tests on the GPU"
    python3 -m pytest "${tests[@]}" -q -p no:cacheprovider 2>&1; echo "tests rc=$?"
    echo "== compare_gpu.py"
    python3 benchmarks/compare_gpu.py "${compare[@]}" 2>&1 | tee "$OUT/compare_gpu.txt"; echo "compare rc=$?"
    echo "== edgeseg benchmark --devices cpu,cuda"
    python3 -m edgeseg.app.cli benchmark --model edgeseg/assets/shapes11n-seg-320.onnx --devices cpu,cuda --providers cpu \
      --no-startup --quiet --out "$OUT/bench" "${bench[@]}" 2>&1; echo "benchmark rc=$?"
    [ -f "$OUT/bench/benchmark.json" ] && mv "$OUT/bench/benchmark.json" "$OUT/benchmark.json" && rm -rf "$OUT/bench"
  } 2>&1 | tee "$OUT/gpu_check.log"
  echo "written: $OUT"
  ;;
*)
  sed -n '2,16p' "$0"
  exit 2
  ;;
esac

"""GPU post-processing per frame: edgeseg's CUDA kernels against its CPU kernels and against Ultralytics' PyTorch
post-processing (non_max_suppression + process_mask_native on CUDA tensors), in one run, on one GPU.

    python benchmarks/compare_gpu.py                 # 20 and 100 objects at 1920x1080, 640x640 network input

Each stage starts from the network's outputs already on the device (edgeseg: a Numba device array; Ultralytics: a
torch CUDA tensor) and ends with the binary masks in host memory, as a user gets them. Refuses to run without a GPU
(edgeseg.errors.CudaError for Numba, a message for PyTorch): the numbers are only meaningful on one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from edgeseg.config import PredictConfig
from edgeseg.errors import CudaError
from edgeseg.letterbox import Letterbox
from edgeseg.postprocess import decode_raw, to_source


def synthetic_head(objects: int, imgsz: int, nc: int = 80, nm: int = 32, seed: int = 0):
    """(4 + nc + nm, A) raw head output with `objects` well-separated objects, each seen by a few anchors (so NMS has
    work), and prototypes (nm, imgsz / 4, imgsz / 4) with smooth blobs."""
    rng = np.random.default_rng(seed)
    anchors = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    pred = np.zeros((4 + nc + nm, anchors), np.float32)
    pred[4 : 4 + nc] = rng.uniform(0, 0.05, (nc, anchors))
    grid = int(np.ceil(np.sqrt(objects)))
    cell = imgsz / grid
    picks = rng.choice(anchors, (objects, 4), replace=False)
    for k in range(objects):
        cx, cy = (k % grid + 0.5) * cell, (k // grid + 0.5) * cell
        for j, a in enumerate(picks[k]):
            pred[:4, a] = cx + j, cy - j, cell * 0.8, cell * 0.7
            pred[4 + k % nc, a] = 0.9 - 0.05 * j
            pred[4 + nc :, a] = rng.normal(0, 1, nm)
    mh = imgsz // 4
    yy, xx = np.mgrid[:mh, :mh] / mh
    protos = np.stack([np.sin(rng.uniform(2, 12) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 12) * yy)
                       for _ in range(nm)]).astype(np.float32)
    return pred, protos


def timed(fn, iters: int, warmup: int, sync=lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--size", default="1920x1080", help="source image WxH (default 1920x1080)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device-id", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from edgeseg.gpu import require_cuda, simulated

    try:
        cuda = require_cuda(args.device_id)
    except CudaError as e:
        print(f"compare_gpu: {e}", file=sys.stderr)
        return 2
    if simulated():
        print("compare_gpu: numba.cuda is the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): timings would be "
              "meaningless; unset it on a machine with a GPU", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("compare_gpu: PyTorch sees no CUDA GPU (install a CUDA build of torch) - nothing to compare with",
              file=sys.stderr)
        return 2
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import process_mask_native, scale_boxes

    from edgeseg.postprocess_cuda import decode_raw_cuda, to_source_cuda

    cfg = PredictConfig()
    letterbox = Letterbox.fit((height, width), (args.imgsz, args.imgsz))
    torch_device = torch.device(f"cuda:{args.device_id}")
    rows = []
    for objects in args.objects:
        pred, protos = synthetic_head(objects, args.imgsz)
        nc = 80
        d_pred, d_protos = cuda.to_device(pred), cuda.to_device(protos)
        t_pred, t_protos = (torch.from_numpy(pred)[None].to(torch_device), torch.from_numpy(protos).to(torch_device))

        def edgeseg_gpu():
            boxes, masks = to_source_cuda(decode_raw_cuda(d_pred, nc, cfg), d_protos, letterbox)
            return boxes, masks

        def edgeseg_cpu():
            return to_source(decode_raw(pred, nc, cfg), protos, letterbox)

        def ultralytics_torch():
            det = non_max_suppression(t_pred, cfg.conf, cfg.iou, max_det=cfg.max_det, nc=nc)[0]
            det[:, :4] = scale_boxes((args.imgsz, args.imgsz), det[:, :4], (height, width))
            masks = process_mask_native(t_protos, det[:, 6:], det[:, :4], (height, width))
            return det.cpu(), masks.cpu()

        found = [len(edgeseg_gpu()[0]), len(edgeseg_cpu()[0]), len(ultralytics_torch()[0])]
        sync = torch.cuda.synchronize
        for name, fn in [("edgeseg cuda", edgeseg_gpu), ("edgeseg cpu", edgeseg_cpu),
                         ("ultralytics torch cuda", ultralytics_torch)]:
            times = timed(fn, args.iters, args.warmup, sync)
            rows.append((objects, name, statistics.mean(times), statistics.median(times),
                         float(np.percentile(times, 90))))
        print(f"{objects} objects: kept {found[0]} (edgeseg cuda), {found[1]} (edgeseg cpu), {found[2]} (ultralytics)")
    gpu_name = cuda.get_current_device().name
    gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else gpu_name
    print(f"\npost-processing per frame, {width}x{height} source, {args.imgsz} input, on {gpu_name}")
    print(f"{'objects':>7}  {'runtime':<24}{'mean ms':>9}{'p50 ms':>9}{'p90 ms':>9}")
    for objects, name, mean, p50, p90 in rows:
        print(f"{objects:>7}  {name:<24}{mean:>9.3f}{p50:>9.3f}{p90:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

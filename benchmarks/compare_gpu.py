"""GPU post-processing per frame: edgeseg's CUDA kernels against its CPU kernels and against Ultralytics' PyTorch
post-processing (non_max_suppression + process_mask_native on CUDA tensors), in one run, on one GPU.

    python benchmarks/compare_gpu.py                 # 20 and 100 objects at 1920x1080, 640x640 network input

Each run starts from the network's outputs already on the device (edgeseg: a Numba device array; Ultralytics: a
torch CUDA tensor) and ends either with the binary masks in host memory, as a user gets them, or with each object
cut out of the frame (black background, cropped to its box) in host memory: the issue's "NMS through isolated
objects". The frame is uploaded once before timing, on both sides. Refuses to run without a GPU
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
from edgeseg.inputs.letterbox import Letterbox
from edgeseg.postprocess.cpu import decode_raw, to_source


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
    parser.add_argument("--dry-run", action="store_true",
                        help="check the script itself without a GPU: Numba's CUDA simulator and PyTorch on the CPU "
                             "(use tiny sizes; the timings mean nothing)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from edgeseg.postprocess.gpu import require_cuda, simulated

    try:
        cuda = require_cuda(args.device_id)
    except CudaError as e:
        print(f"compare_gpu: {e}", file=sys.stderr)
        return 2
    if simulated() and not args.dry_run:
        print("compare_gpu: numba.cuda is the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): timings would be "
              "meaningless; unset it on a machine with a GPU", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available() and not args.dry_run:
        print("compare_gpu: PyTorch sees no CUDA GPU (install a CUDA build of torch) - nothing to compare with",
              file=sys.stderr)
        return 2
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import process_mask_native, scale_boxes

    from edgeseg.kernels.cuda.workspace import Workspace
    from edgeseg.postprocess.cuda import decode_raw_cuda, isolate_cuda, to_source_cuda
    from edgeseg.results import Results

    cfg = PredictConfig()
    letterbox = Letterbox.fit((height, width), (args.imgsz, args.imgsz))
    torch_device = torch.device("cpu" if args.dry_run else f"cuda:{args.device_id}")
    nc = 80
    names = {c: str(c) for c in range(nc)}
    frame = np.random.default_rng(1).integers(0, 256, (height, width, 3), np.uint8)
    d_frame, t_frame = cuda.to_device(frame), torch.from_numpy(frame).to(torch_device)  # uploaded once, both sides
    workspace = Workspace()  # as a Segmenter(device="cuda") keeps one
    rows = []
    for objects in args.objects:
        pred, protos = synthetic_head(objects, args.imgsz, nc)
        d_pred, d_protos = cuda.to_device(pred), cuda.to_device(protos)
        t_pred, t_protos = (torch.from_numpy(pred)[None].to(torch_device), torch.from_numpy(protos).to(torch_device))

        # the closures bind this iteration's arrays as defaults: each is timed within the iteration that made it
        def edgeseg_gpu(device_results=False, d_pred=d_pred, d_protos=d_protos):
            found = decode_raw_cuda(d_pred, nc, cfg, workspace)
            return to_source_cuda(found, d_protos, letterbox, device_results, workspace)

        def edgeseg_gpu_isolated():  # masks stay on the GPU; only the cut-outs come to the host
            result = Results(frame, None, names, *edgeseg_gpu(device_results=True))
            return isolate_cuda(result, d_frame, background="black", crop=True, workspace=workspace)

        def edgeseg_cpu(pred=pred, protos=protos):
            return to_source(decode_raw(pred, nc, cfg), protos, letterbox)

        def edgeseg_cpu_isolated():
            return Results(frame, None, names, *edgeseg_cpu()).isolate(background="black", crop=True)

        def ultralytics_masks(t_pred=t_pred, t_protos=t_protos):  # on the GPU
            det = non_max_suppression(t_pred, cfg.conf, cfg.iou, max_det=cfg.max_det, nc=nc)[0]
            det[:, :4] = scale_boxes((args.imgsz, args.imgsz), det[:, :4], (height, width))
            return det, process_mask_native(t_protos, det[:, 6:], det[:, :4], (height, width))

        def ultralytics_torch():
            det, masks = ultralytics_masks()
            return det.cpu(), masks.cpu()

        def ultralytics_torch_isolated():  # what a PyTorch user writes: each box of frame x mask, then to the host
            det, masks = ultralytics_masks()
            boxes = det[:, :4].round().int().clamp(min=0).tolist()
            return [(t_frame[y0:y1, x0:x1] * masks[i, y0:y1, x0:x1, None].to(t_frame.dtype)).cpu()
                    for i, (x0, y0, x1, y1) in enumerate(boxes)]

        found = [len(edgeseg_gpu()[0]), len(edgeseg_cpu()[0]), len(ultralytics_torch()[0])]
        sync = (lambda: None) if args.dry_run else torch.cuda.synchronize
        for end, runs in [("masks", [("edgeseg cuda", edgeseg_gpu), ("edgeseg cpu", edgeseg_cpu),
                                     ("ultralytics torch cuda", ultralytics_torch)]),
                          ("isolated", [("edgeseg cuda", edgeseg_gpu_isolated), ("edgeseg cpu", edgeseg_cpu_isolated),
                                        ("ultralytics torch cuda", ultralytics_torch_isolated)])]:
            for name, fn in runs:
                times = timed(fn, args.iters, args.warmup, sync)
                rows.append((objects, end, name, statistics.mean(times), statistics.median(times),
                             float(np.percentile(times, 90))))
        print(f"{objects} objects: kept {found[0]} (edgeseg cuda), {found[1]} (edgeseg cpu), {found[2]} (ultralytics)")
    gpu_name = "no GPU: a dry run" if args.dry_run else cuda.get_current_device().name
    gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else gpu_name
    print(f"\npost-processing per frame, {width}x{height} source, {args.imgsz} input, on {gpu_name}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("masks: NMS through binary masks in host memory; isolated: NMS through black-background cut-outs of each "
          "object's box in host memory")
    # a space before each number: a slow run (the simulator under load: over 10 s) must not run into its neighbour
    print(f"{'objects':>7}  {'ends with':<9}  {'runtime':<24} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9}"
          f"{'vs edgeseg cuda (p50)':>23}")
    p50 = {(o, e, n): m for o, e, n, _, m, _ in rows}
    for objects, end, name, mean, median, p90 in rows:
        ratio = median / p50[(objects, end, "edgeseg cuda")]
        print(f"{objects:>7}  {end:<9}  {name:<24} {mean:>9.3f} {median:>9.3f} {p90:>9.3f}{ratio:>22.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

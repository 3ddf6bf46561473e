"""The GPU path after the network: decode + NMS, boxes and masks at source resolution, cut-outs and mask fill, on
the GPU with the CUDA kernels of edgeseg/kernels/cuda/. Mirrors postprocess.py (and isolate.py, kernels/blend.py):
the same Boxes and Masks, bit for bit.

What crosses to the host: the candidate count (it sizes NMS), the kept count, the kept boxes, scores and classes
(N x 6 numbers, one copy: the geometry of the masks is computed from them on the host, as on the CPU path), one
byte per object (is its mask empty?), and the masks themselves (the sum of the box areas), unless they are asked
for on the device. Scratch buffers come from a Workspace (kernels/cuda/workspace.py), reused frame after frame.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import IsolateOptions, PredictConfig
from ..inputs.letterbox import Letterbox, box_pixels, mask_geometry
from ..kernels.blend import blend_weight
from ..kernels.masks import box_offsets
from ..results import Boxes, DeviceMasks, Masks, Results
from .cpu import MAX_NMS_CANDIDATES, MAX_WH, Detections, allowed_classes, log_dropped
from .gpu import require_cuda

if TYPE_CHECKING:
    from ..kernels.cuda.workspace import Workspace


def decode_raw_cuda(pred: Any, num_classes: int, cfg: PredictConfig, workspace: Workspace | None = None
                    ) -> Detections:
    """postprocess.decode_raw on the GPU: pred (4 + nc + nm, A) float32 device array. The Detections' coefs stay on
    the device (a (N, nm) float32 device array, in `workspace` when one is given); xyxy, conf and cls are host
    arrays."""
    from ..kernels.cuda.nms import decode_raw_cuda as kernel

    *found, dropped = kernel(pred, num_classes, cfg.conf, allowed_classes(num_classes, cfg.classes),
                             cfg.multi_label and num_classes > 1, cfg.iou, cfg.max_det,
                             0.0 if cfg.agnostic_nms else float(MAX_WH), MAX_NMS_CANDIDATES, workspace)
    log_dropped(dropped)
    return Detections(*found)


def decode_end2end_cuda(pred: Any, cfg: PredictConfig, workspace: Workspace | None = None) -> Detections:
    """postprocess.decode_end2end on the GPU: pred (K, 6 + nm) float32 device array; coefs stay on the device."""
    from ..kernels.cuda.nms import decode_end2end_cuda as kernel

    *found, dropped = kernel(pred, cfg.conf, cfg.classes, cfg.max_det, workspace)
    log_dropped(dropped)
    return Detections(*found)


def to_source_cuda(det: Detections, protos: Any, letterbox: Letterbox, device_results: bool = False,
                   workspace: Workspace | None = None) -> tuple[Boxes, Masks | DeviceMasks]:
    """postprocess.to_source on the GPU: protos (nm, mh, mw) float32 device array, det from decode_*_cuda.
    Masks in host memory, or DeviceMasks (no copy of the masks, in buffers of their own) with device_results.
    workspace: where scratch buffers come from, frame after frame (fresh ones if None)."""
    from ..kernels.cuda.masks import masks_in_boxes_cuda

    shape = letterbox.src_shape
    xyxy = letterbox.boxes_to_source(det.xyxy)
    bounds = box_pixels(xyxy, shape)
    upsample, crop = mask_geometry(protos.shape[1:], shape)
    # masks copied to the host can live in the workspace; masks left on the device are the caller's to keep
    output = None if device_results else workspace
    flat, offsets, nonzero = masks_in_boxes_cuda(protos, det.coefs, bounds, upsample, crop, shape, workspace, output)
    keep = nonzero.copy_to_host().astype(np.bool_)  # as the CPU path: objects whose mask is empty are dropped
    boxes = Boxes(xyxy[keep], det.conf[keep].astype(np.float32), det.cls[keep].astype(np.int64), shape)
    kept = bounds[keep]
    shapes = np.stack([kept[:, 3] - kept[:, 1], kept[:, 2] - kept[:, 0]], axis=1).astype(np.int64)
    masks = DeviceMasks(flat, offsets[:-1][keep].copy(), shapes, kept[:, :2].copy(), shape)
    return boxes, (masks if device_results else masks.to_host())


def _device_masks(masks: Masks | DeviceMasks) -> tuple[Any, np.ndarray, np.ndarray]:
    """(flat device buffer, starts (N,), pixel boxes (N, 4)) of masks on either side (host masks are uploaded once)."""
    from .gpu import upload

    if isinstance(masks, DeviceMasks):
        return masks.flat, masks.starts, masks.boxes
    boxes = np.array([[x0, y0, x0 + c.shape[1], y0 + c.shape[0]]
                      for c, (x0, y0) in zip(masks.crops, masks.origins, strict=True)], np.int64).reshape(-1, 4)
    starts = box_offsets(boxes)[:-1]
    flat = np.concatenate([c.ravel() for c in masks.crops]) if len(boxes) else np.zeros(0, np.uint8)
    return upload(flat if flat.size else np.zeros(1, np.uint8)), starts, boxes  # never an empty device buffer


def isolate_cuda(result: Results, frame: Any = None, background: str = "black", crop: bool = True,
                 to_host: bool = True, workspace: Workspace | None = None) -> list[Any]:
    """Results.isolate (source "mask") on the GPU: one cut-out per object, (h, w, 3) BGR on black or (h, w, 4)
    BGRA on transparent, cropped to the object's integer box or the full frame.

    frame: result.orig_img already on the GPU ((H, W, 3) uint8 device array), or None to upload it once. Host
    arrays, or device arrays (of their own) with to_host=False. workspace: for the tables and, with to_host, the
    cut-outs before their copy to the host (fresh buffers if None).
    """
    from ..kernels.cuda.isolate import MODES, cut_outs_cuda
    from .gpu import upload

    options = IsolateOptions(background, crop, "mask")
    if len(result) == 0:  # nothing to cut out: not even the frame goes up
        return []
    regions = options.regions(result.boxes.xyxy, result.orig_shape)
    flat_masks, starts, boxes = _device_masks(result.masks)
    frame = upload(result.orig_img) if frame is None else frame
    flat, offsets = cut_outs_cuda(frame, flat_masks, starts, boxes, regions, options.background, workspace,
                                  workspace if to_host else None)
    shapes = [(int(y1 - y0), int(x1 - x0), MODES[options.background]) for x0, y0, x1, y1 in regions]
    if not to_host:
        return [flat[offsets[i] : offsets[i + 1]].reshape(*s) for i, s in enumerate(shapes)]
    host = flat.copy_to_host() if flat.shape[0] else np.zeros(0, np.uint8)
    return [host[offsets[i] : offsets[i + 1]].reshape(s) for i, s in enumerate(shapes)]


def fill_masks_cuda(frame: Any, masks: Masks | DeviceMasks, colors: Sequence, alpha: float) -> Any:
    """kernels.blend.blend_masks on the GPU: colors[i] blended into the (H, W, 3) uint8 device `frame` (in place)
    where mask i is set, later objects over earlier ones. Returns `frame`."""
    from ..kernels.cuda.blend import blend_masks_cuda

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    flat, starts, boxes = _device_masks(masks)
    return blend_masks_cuda(frame, flat, starts, boxes, np.asarray(colors), blend_weight(alpha))


class CudaPostprocessor:
    """The Segmenter's post-processing on GPU `device_id`: network outputs (device arrays, or host arrays uploaded
    once) -> Boxes and Masks. Raises CudaError when there is no usable GPU.

    Its scratch buffers live in one Workspace, reused frame after frame; a lock keeps two threads from sharing it
    at once (a pipeline post-processes on one thread, but a Segmenter may be called from several)."""

    def __init__(self, num_classes: int, cfg: PredictConfig, end2end: bool, device_id: int = 0,
                 device_results: bool = False):
        from ..kernels.cuda.workspace import Workspace

        self.cuda = require_cuda(device_id)
        self.device_id = device_id
        self.num_classes, self.cfg, self.end2end, self.device_results = num_classes, cfg, end2end, device_results
        self.workspace = Workspace()
        self._lock = threading.Lock()

    def to_device(self, output: Any) -> Any:
        """A network output as a float32 device array: a device buffer viewed in place, a host array uploaded."""
        from ..kernels.cuda.cast import to_float32
        from ..kernels.cuda.jit import is_device_array
        from .gpu import as_device_array, upload

        if isinstance(output, np.ndarray):
            return upload(output.astype(np.float32, copy=False))
        return to_float32(output if is_device_array(output) else as_device_array(output))

    def keep(self, outputs: Sequence[Any]) -> list[Any]:
        """Float32 device arrays of their own with the values of network outputs whose buffers the next run
        overwrites (a TensorRT engine's, a CUDA graph's): a pipeline runs the network again before it has
        post-processed these. A float16 output's conversion is already such an array; only float32 buffers are
        copied."""
        from ..kernels.cuda.cast import to_float32
        from ..kernels.cuda.jit import is_device_array
        from .gpu import as_device_array

        if not _simulated():
            self.cuda.select_device(self.device_id)
        kept = []
        for output in outputs:
            if isinstance(output, np.ndarray):
                kept.append(self.to_device(output))  # an upload: a buffer of its own
                continue
            source = output if is_device_array(output) else as_device_array(output)
            if source.dtype != np.float32:
                kept.append(to_float32(source))  # the conversion writes a buffer of its own
                continue
            copy = self.cuda.device_array(source.shape, source.dtype)
            copy.copy_to_device(source)
            kept.append(copy)
        return kept

    def __call__(self, det: Any, protos: Any, letterbox: Letterbox) -> tuple[Boxes, Masks | DeviceMasks]:
        """One image: det (4 + nc + nm, A) or (K, 6 + nm) and protos (nm, mh, mw), float32 device arrays."""
        with self._lock:
            if not _simulated():  # a pipeline may call from another thread than the one that built this
                self.cuda.select_device(self.device_id)
            ws = self.workspace
            found = (decode_end2end_cuda(det, self.cfg, ws) if self.end2end
                     else decode_raw_cuda(det, self.num_classes, self.cfg, ws))
            return to_source_cuda(found, protos, letterbox, self.device_results, ws)


def _simulated() -> bool:
    from .gpu import simulated

    return simulated()

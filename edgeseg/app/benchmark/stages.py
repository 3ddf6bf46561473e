"""Contenders timed stage by stage on the same frames, and the interleaved loop that measures them.

Each iteration gives every contender a turn on the same frames, in an order that rotates, so drift on a
shared machine hits all contenders alike. Each turn starts with one untimed call: ONNX Runtime's worker
threads keep spinning for a while after a run, and a session that runs right after another session shares
the cores with them (about 1.6x slower on a 2-core machine, whoever it is). An application runs one
session, so the settled calls say how fast each side is (see benchmarks/compare.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
from ...postprocess.cpu import decode_end2end, decode_raw, to_source
from ...results import Results
from ...segmenter import Segmenter
from ..progress import Progress

EDGESEG_STAGES = ("preprocess", "inference", "decode_nms", "masks", "contours", "isolation", "annotation", "total")
ULTRALYTICS_STAGES = ("preprocess", "inference", "postprocess", "total")

SHORT_PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                   "TensorrtExecutionProvider": "tensorrt"}


def short_provider(provider: str) -> str:
    return SHORT_PROVIDERS.get(provider, provider.removesuffix("ExecutionProvider").lower())


class EdgesegStages:
    """edgeseg's chain on one batch of frames, every stage timed on its own: Preprocessor, backend.infer,
    decode_raw / decode_end2end, to_source, masks.contours("largest"), isolate(transparent, cropped) and
    masks + boxes + labels drawn. Returns ms per frame by stage, and "objects" per frame.

    With the Segmenter's device="cuda", decode + NMS, masks and the cut-outs run on the GPU (postprocess_cuda),
    each stage timed to the end of its GPU work; inference then includes bringing the outputs to the GPU (in place
    for a GPU provider, one upload for the CPU one). Outlines and drawing stay on the CPU, as in an application."""

    kind = "edgeseg"
    stages = EDGESEG_STAGES

    def __init__(self, segmenter: Segmenter):
        self.seg = segmenter
        self.model = str(segmenter.model_path)
        self.provider = segmenter.providers[0]
        self.device = segmenter.config.device
        on_gpu = " post-processing on cuda" if self.device == "cuda" else ""
        self.name = f"edgeseg {segmenter.model_path.stem} {short_provider(self.provider)}{on_gpu}"
        self.annotator = compose(MaskAnnotator(), BoxAnnotator(), LabelAnnotator())

    def _outputs(self, tensor: np.ndarray) -> tuple:
        """The network's detections and prototypes for the batch: host float arrays, or float32 device arrays."""
        seg, gpu = self.seg, self.seg._gpu
        det, protos = seg.spec.split(seg.infer(tensor))
        if gpu is None:
            return det, protos
        det, protos = gpu.to_device(det), gpu.to_device(protos)
        gpu.cuda.synchronize()
        return det, protos

    def _decode(self, pred) -> Any:
        seg, cfg, gpu = self.seg, self.seg.config, self.seg._gpu
        if gpu is None:
            pred = pred.astype(np.float32, copy=False)
            return decode_end2end(pred, cfg) if seg.end2end else decode_raw(pred, seg.num_classes, cfg)
        from ...postprocess.cuda import decode_end2end_cuda, decode_raw_cuda

        ws = gpu.workspace  # the Segmenter's buffers, reused frame after frame as in its own runs
        found = (decode_end2end_cuda(pred, cfg, ws) if seg.end2end else decode_raw_cuda(pred, seg.num_classes, cfg, ws))
        gpu.cuda.synchronize()
        return found

    def _masks(self, found: Any, protos, letterbox) -> tuple:
        if self.seg._gpu is None:
            return to_source(found, protos.astype(np.float32, copy=False), letterbox)
        from ...postprocess.cuda import to_source_cuda

        # ends with the masks' copy to the host
        return to_source_cuda(found, protos, letterbox, device_results=False, workspace=self.seg._gpu.workspace)

    def _isolate(self, result: Results) -> None:
        if self.seg._gpu is None:
            result.isolate(background="transparent", crop=True)
            return
        from ...postprocess.cuda import isolate_cuda

        # uploads the frame, returns host cut-outs
        isolate_cuda(result, background="transparent", crop=True, workspace=self.seg._gpu.workspace)

    def __call__(self, images: Sequence[np.ndarray]) -> dict[str, float]:
        seg = self.seg
        ms = dict.fromkeys(self.stages, 0.0)
        objects = 0
        t0 = time.perf_counter()
        tensor, letterboxes = seg.preprocess(list(images))
        t1 = time.perf_counter()
        det, protos = self._outputs(tensor)
        t2 = time.perf_counter()
        ms["preprocess"], ms["inference"] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        for k, (image, letterbox) in enumerate(zip(images, letterboxes, strict=True)):
            t0 = time.perf_counter()
            found = self._decode(det[k])
            t1 = time.perf_counter()
            boxes, masks = self._masks(found, protos[k], letterbox)
            result = Results(image, None, seg.names, boxes, masks)
            t2 = time.perf_counter()
            result.masks.contours("largest")
            t3 = time.perf_counter()
            self._isolate(result)
            t4 = time.perf_counter()
            self.annotator.annotate(image, result)
            t5 = time.perf_counter()
            for stage, (a, b) in zip(self.stages[2:7], ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)), strict=True):
                ms[stage] += (b - a) * 1e3
            objects += len(result)
        return self._per_frame(ms, objects, len(images))

    def _per_frame(self, ms: dict[str, float], objects: int, n: int) -> dict[str, float]:
        per_frame = {stage: value / n for stage, value in ms.items()}
        per_frame["total"] = sum(per_frame[s] for s in self.stages[:-1])
        per_frame["objects"] = objects / n
        return per_frame


class UltralyticsStages:
    """Ultralytics' predict on the same model file and frames (retina_masks=True, the same conf, iou and input
    size): its own preprocess / inference / postprocess times (result.speed) and the wall time of the call."""

    kind = "ultralytics"
    stages = ULTRALYTICS_STAGES

    def __init__(self, model: str | Path, reference: Segmenter, device: str = "cpu"):
        from ultralytics import YOLO

        self.yolo = YOLO(str(model), task="segment")
        self.model = str(model)
        self.provider = self.device = device
        self.name = f"ultralytics {Path(model).stem}"
        cfg = reference.config
        self.options = dict(conf=cfg.conf, iou=cfg.iou, imgsz=list(reference.imgsz), max_det=cfg.max_det,
                            retina_masks=True, device=device, batch=reference.batch_size, verbose=False)

    def __call__(self, images: Sequence[np.ndarray]) -> dict[str, float]:
        t0 = time.perf_counter()
        results = self.yolo.predict(list(images), **self.options)
        total = (time.perf_counter() - t0) * 1e3
        n = len(results)
        per_frame = {stage: sum(r.speed[stage] for r in results) / n for stage in self.stages[:-1]}
        per_frame["total"] = total / n
        per_frame["objects"] = sum(len(r) for r in results) / n
        return per_frame


Contender = Callable[[Sequence[np.ndarray]], dict[str, float]]


def measure(contenders: Sequence[Contender], batches: Sequence[Sequence[np.ndarray]], iters: int, warmup: int,
            progress: bool = True) -> list[list[dict[str, float]]]:
    """One list of per-iteration records (ms per frame by stage, and "objects") per contender.

    Iteration i gives every contender batch i % len(batches): a settle call, then the timed call, in an order
    rotated by i; the first `warmup` iterations are run and dropped."""
    records: list[list[dict[str, float]]] = [[] for _ in contenders]
    with Progress(warmup + iters, "benchmark", enabled=progress) as bar:
        for it in range(warmup + iters):
            images = batches[it % len(batches)]
            shift = it % len(contenders)
            for k in list(range(shift, len(contenders))) + list(range(shift)):
                contenders[k](images)  # settles the cores (see the module's docstring); not timed
                record = contenders[k](images)
                if it >= warmup:
                    records[k].append(record)
            bar.update(note="warmup" if it < warmup else "")
    return records

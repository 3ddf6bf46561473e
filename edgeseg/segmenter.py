"""Segmenter: a YOLO segmentation model file in, Results out."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .backends import Backend, open_backend
from .config import PredictConfig, ProviderOptions
from .errors import ConfigError, NotSegmentationModelError
from .kernels.jit import require_kernels
from .metadata import ModelMetadata, class_names
from .postprocess import decode_end2end, decode_raw, to_source
from .preprocess import Preprocessor
from .results import Results
from .sources import expand_source, iter_images

log = logging.getLogger("edgeseg")

_END = object()  # the last item a pipeline stage hands on


class _Failure:
    """An exception raised in a pipeline thread, on its way to the caller's thread."""

    def __init__(self, error: BaseException):
        self.error = error


def _take(q: queue.Queue, stop: threading.Event) -> Any:
    """The next item of a pipeline queue, or None once `stop` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None


class Segmenter:
    """Runs a YOLO11-seg (or NMS-in-graph, e.g. YOLO26-seg) model on images: an ONNX file or a TensorRT engine.

    >>> seg = Segmenter("yolo11n-seg.onnx", conf=0.25)
    >>> for r in seg("images/"):
    ...     print(r.path, r.boxes.xyxy, r.masks.data.shape)

    device="cuda" runs the post-processing on the GPU (edgeseg.postprocess_cuda) with the same results; with
    providers "auto" the network then runs on TensorRT or CUDA when onnxruntime offers them, its outputs read in
    place on the GPU (IO binding). A CPU-only onnxruntime runs the network on the CPU and its two outputs are
    uploaded once. No usable GPU is a CudaError, never a fallback to the CPU.
    """

    def __init__(
        self,
        model: str | Path,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: int | tuple[int, int] | None = None,
        max_det: int = 300,
        classes: int | Iterable[int] | None = None,
        agnostic_nms: bool = False,
        providers: str | Iterable[str] = "auto",
        multi_label: bool = False,
        batch: int = 1,
        provider_options: ProviderOptions | dict | None = None,
        device: str = "cpu",
        device_results: bool = False,
    ):
        cfg = PredictConfig(conf=conf, iou=iou, imgsz=imgsz, max_det=max_det,
                            classes=tuple(classes) if classes is not None and not isinstance(classes, int) else classes,
                            agnostic_nms=agnostic_nms, multi_label=multi_label, batch=batch,
                            providers=providers if isinstance(providers, str) else tuple(providers),
                            provider_options=provider_options, device=device, device_results=device_results)
        self._setup(model, cfg)

    @classmethod
    def from_config(cls, model: str | Path, config: PredictConfig) -> "Segmenter":
        self = cls.__new__(cls)
        self._setup(model, config)
        return self

    def _setup(self, model: str | Path, cfg: PredictConfig) -> None:
        require_kernels()
        self.config = cfg
        self.model_path = Path(model)
        self.backend: Backend = open_backend(model, cfg.providers, cfg.provider_options)
        self._gpu: Any = None
        try:
            self._inspect(self.backend, ModelMetadata.from_strings(self.backend.metadata))
            if cfg.device == "cuda":
                from .postprocess_cuda import CudaPostprocessor

                self._gpu = CudaPostprocessor(self.num_classes, cfg, self.end2end, self._gpu_index(),
                                              cfg.device_results)
                if not self.backend.outputs_on_gpu:
                    log.info("edgeseg: %s runs on %s; its outputs are uploaded to the GPU once per batch for "
                             "post-processing", self.model_path.name, self.providers[0])
            elif self.backend.outputs_on_gpu:
                log.info("edgeseg: post-processing runs on the CPU (device='cpu'); device='cuda' keeps the network's "
                         "outputs on the GPU")
        except Exception:
            self.backend.close()
            raise

    def _gpu_index(self) -> int:
        """The GPU of the post-processing: the network's (device_id, or N of 'cuda:N' / 'tensorrt:N'), else 0."""
        kind, index = self.backend.binding_device
        if kind == "cuda":
            return index
        if self.config.provider_options.device_id is not None:
            return self.config.provider_options.device_id
        for request in () if self.config.providers == "auto" else self.config.providers:
            name, _, index = request.partition(":")
            if name.lower() in ("cuda", "gpu", "tensorrt", "trt") and index.isdigit():
                return int(index)
        return 0

    def _inspect(self, backend: Backend, meta: ModelMetadata) -> None:
        name = self.model_path.name
        meta.check_task(name)
        shapes = [o.shape for o in backend.outputs]
        if len(shapes) != 2 or sorted(len(s) for s in shapes) != [3, 4]:
            raise NotSegmentationModelError(
                f"{name} is not a YOLO segmentation model: it has outputs {shapes}, a segmentation model has two, "
                "detections (B, 4 + nc + nm, anchors) or (B, max_det, 6 + nm), and prototypes (B, nm, mh, mw)")
        self._det_index = 0 if len(shapes[0]) == 3 else 1
        det_shape, proto_shape = shapes[self._det_index], shapes[1 - self._det_index]
        nm = proto_shape[1]
        if nm is None:
            raise NotSegmentationModelError(f"{name}: the prototype count (output dim 1) must be fixed, got {proto_shape}")
        rows, cols = det_shape[1], det_shape[2]
        nc_meta = len(meta.names) if meta.names else None
        if meta.end2end is not None:
            self.end2end = meta.end2end
        else:  # no metadata: an NMS-in-graph output is (B, K, 6 + nm) while a raw one is (B, 4 + nc + nm, A)
            self.end2end = cols == 6 + nm and (rows is None or nc_meta is None or rows != 4 + nc_meta + nm)
        if self.end2end:
            if cols != 6 + nm:
                raise NotSegmentationModelError(f"{name}: NMS-in-graph output must be (B, K, {6 + nm}), got {det_shape}")
            num_classes = nc_meta or (80 if meta.names is None else 0)
        else:
            if rows is None or rows - 4 - nm < 1:
                raise NotSegmentationModelError(f"{name}: detection output {det_shape} does not hold 4 box values, "
                                                f"class scores and {nm} mask coefficients")
            num_classes = rows - 4 - nm
        unknown = [c for c in self.config.classes or () if c >= num_classes]
        if unknown and num_classes:  # a class the model does not have would silently find nothing
            raise ConfigError(f"classes {unknown} are not classes of {name}: it has {num_classes} (0 to "
                              f"{num_classes - 1})")
        self.num_classes = num_classes
        self.num_protos = nm
        self.names = class_names(meta, num_classes)
        self.stride = meta.stride or 32

        inp = backend.input
        if len(inp.shape) != 4 or inp.shape[1] not in (3, None):
            raise NotSegmentationModelError(f"{name}: input must be (B, 3, H, W), got {inp.shape}")
        fixed_hw = inp.shape[2:] if None not in inp.shape[2:] else None
        cfg = self.config
        if fixed_hw is not None:
            if cfg.imgsz is not None and cfg.imgsz != fixed_hw:
                raise ConfigError(f"{name} takes a fixed {fixed_hw[0]}x{fixed_hw[1]} input; imgsz {cfg.imgsz} is not "
                                  "possible (export with dynamic=True for other sizes)")
            imgsz = tuple(fixed_hw)
        else:
            # Ultralytics runs a dynamic-shape model at its default 640 unless told otherwise (not at the
            # export size in the metadata); doing the same keeps the two runtimes' results identical.
            imgsz = cfg.imgsz or (640, 640)
            log.info("%s takes any input size; running at %dx%d", name, *imgsz)
            rounded = tuple(math.ceil(v / self.stride) * self.stride for v in imgsz)
            if rounded != tuple(imgsz):
                log.warning("imgsz %s is not a multiple of stride %d, using %s", imgsz, self.stride, rounded)
            imgsz = rounded
        self.imgsz: tuple[int, int] = imgsz  # type: ignore[assignment]
        self.fixed_batch = inp.shape[0]
        self.batch_size = self.fixed_batch or cfg.batch
        self._pre = Preprocessor(self.imgsz, inp.dtype, self.stride, dynamic=fixed_hw is None, batch=self.fixed_batch)

    @property
    def providers(self) -> tuple[str, ...]:
        return self.backend.providers

    def __call__(self, source: Any) -> list[Results]:
        return self.predict(source)

    def predict(self, source: Any) -> list[Results]:
        """Results for every image of `source`: path, folder, glob, array, or a list of these."""
        return list(self.stream(source))

    def stream(self, source: Any) -> Iterator[Results]:
        """Like predict, one Results at a time (images are read lazily, batch by batch)."""
        for batch in self._batches(iter_images(expand_source(source))):
            yield from self._run(batch)

    def _batches(self, items: Iterable[tuple[str | None, np.ndarray]]) -> Iterator[list[tuple[str | None, np.ndarray]]]:
        """(name, image) pairs in lists of batch_size, the last one possibly shorter."""
        batch: list[tuple[str | None, np.ndarray]] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _run(self, batch: list[tuple[str | None, np.ndarray]]) -> list[Results]:
        t0 = time.perf_counter()
        tensor, letterboxes = self._pre([image for _, image in batch])
        t1 = time.perf_counter()
        outputs = self._infer(tensor)
        t2 = time.perf_counter()
        return self._finish(batch, letterboxes, outputs, (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def _infer(self, tensor: np.ndarray) -> list[Any]:
        """The network's outputs: on the GPU (OrtValues) when the GPU path can read them there, else host arrays."""
        if self._gpu is not None and self.backend.outputs_on_gpu:
            return self.backend.infer_on_device(tensor)
        return self.backend.infer(tensor)

    def _finish(self, batch: list[tuple[str | None, np.ndarray]], letterboxes: list, outputs: list[np.ndarray],
                pre_ms: float, infer_ms: float) -> list[Results]:
        """Network outputs of one batch -> one Results per image, with ms per stage per image in `speed`."""
        t0 = time.perf_counter()
        det, protos = outputs[self._det_index], outputs[1 - self._det_index]
        results = []
        if self._gpu is not None:
            det, protos = self._gpu.to_device(det), self._gpu.to_device(protos)
        for k, ((path, image), lb) in enumerate(zip(batch, letterboxes)):
            results.append(Results(image, path, self.names, *self._postprocess(det[k], protos[k], lb)))
        n = len(batch)
        speed = {"preprocess": pre_ms / n, "inference": infer_ms / n,
                 "postprocess": (time.perf_counter() - t0) * 1e3 / n}
        for r in results:
            r.speed = dict(speed)
        return results

    def _postprocess(self, det: Any, protos: Any, letterbox: Any) -> tuple:
        """One image's network outputs -> (Boxes, Masks): on the GPU path (device arrays), or with the CPU kernels."""
        if self._gpu is not None:
            return self._gpu(det, protos, letterbox)
        pred = det.astype(np.float32, copy=False)
        found = decode_end2end(pred, self.config) if self.end2end else decode_raw(pred, self.num_classes, self.config)
        return to_source(found, protos.astype(np.float32, copy=False), letterbox)

    def stream_pipelined(self, frames: Iterable[tuple[str | None, np.ndarray]], depth: int = 2) -> Iterator[Results]:
        """Like stream, for long sequences such as video: (name, BGR image) pairs in, Results out in the same
        order, with the stages overlapped. One thread reads and letterboxes the next frames, another runs the
        network (ONNX Runtime releases the GIL), and the caller's thread decodes the masks (Numba kernels
        release it too) and does its own work with each result meanwhile. `depth`: batches waiting between
        stages. Closing the generator early stops both threads."""
        if depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}")
        # each batch in flight needs its own input buffer: up to `depth` queued, one in the network, one being read
        pool = [Preprocessor(self.imgsz, self._pre.dtype, self.stride, self._pre.dynamic, self._pre.batch)
                for _ in range(depth + 2)]
        stop = threading.Event()
        prepared: queue.Queue = queue.Queue(maxsize=depth)
        inferred: queue.Queue = queue.Queue(maxsize=depth)

        def put(q: queue.Queue, item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for turn, batch in enumerate(self._batches(frames)):
                    t0 = time.perf_counter()
                    tensor, boxes = pool[turn % len(pool)]([image for _, image in batch])
                    if not put(prepared, (batch, tensor, boxes, (time.perf_counter() - t0) * 1e3)):
                        return
                put(prepared, _END)
            except BaseException as e:  # handed to the caller's thread, which raises it
                put(prepared, _Failure(e))

        def infer() -> None:
            while True:
                item = _take(prepared, stop)
                if item is None or isinstance(item, _Failure) or item is _END:
                    if item is not None:
                        put(inferred, item)
                    return
                batch, tensor, boxes, pre_ms = item
                try:
                    t0 = time.perf_counter()
                    outputs = self._infer(tensor)
                    if self._gpu is not None and self.backend.outputs_reused:
                        # the next run writes into these GPU buffers while this batch waits to be post-processed
                        outputs = self._gpu.keep(outputs)
                    infer_ms = (time.perf_counter() - t0) * 1e3
                except BaseException as e:
                    put(inferred, _Failure(e))
                    return
                if not put(inferred, (batch, boxes, outputs, pre_ms, infer_ms)):
                    return

        workers = [threading.Thread(target=read, name="edgeseg-read", daemon=True),
                   threading.Thread(target=infer, name="edgeseg-infer", daemon=True)]
        for w in workers:
            w.start()
        try:
            while True:
                item = _take(inferred, stop)
                if item is _END or item is None:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield from self._finish(*item)
        finally:
            stop.set()
            for w in workers:
                # the reader may be waiting on a live source for its next frame: closing that source ends it
                w.join(timeout=5.0)

    def warmup(self) -> None:
        """Runs the network once on a blank frame (the session sizes its buffers), then the post-processing on
        that output with one made-up object, so that every kernel is ready before the first real frame (under
        Numba's JIT: compiled, or loaded from its cache; compiled at install, they only touch their memory once):
        a blank frame alone detects nothing and would leave NMS and masks cold."""
        h, w = self.imgsz
        tensor, (letterbox,) = self._pre([np.full((h, w, 3), 114, np.uint8)])
        if self._gpu is not None:
            self._infer(tensor)  # the IO-binding run: buffers allocated (and a CUDA graph captured)
        outputs = self.backend.infer(tensor)
        pred = outputs[self._det_index][0].astype(np.float32)  # a copy: the object is written into it
        protos = outputs[1 - self._det_index][0].astype(np.float32, copy=False)
        if self.end2end:
            pred[0, :6] = (w / 4, h / 4, w / 2, h / 2, 1.0, 0.0)
        else:
            pred[:4, 0] = (w / 2, h / 2, w / 4, h / 4)
            pred[4 : 4 + self.num_classes, 0] = 1.0
        if self._gpu is not None:
            pred, protos = self._gpu.to_device(pred), self._gpu.to_device(protos)
        self._postprocess(pred, protos, letterbox)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "end-to-end" if self.end2end else "raw"
        post = ", post-processing on cuda" if self._gpu is not None else ""
        return (f"Segmenter({self.model_path.name}, {self.num_classes} classes, {kind} head, "
                f"input {self.imgsz[0]}x{self.imgsz[1]}, {self.providers[0]}{post})")

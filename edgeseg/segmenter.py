"""Segmenter: a YOLO segmentation model file in, Results out. The wiring of the stages: frames from `inputs`, the
network from `model`, boxes and masks from `postprocess`."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import TRACK_CONF, PredictConfig, ProviderOptions
from .errors import ConfigError
from .inputs.letterbox import Letterbox
from .inputs.preprocess import Preprocessor
from .kernels.jit import require_kernels
from .model.backends import Backend, open_backend
from .model.spec import ModelSpec, check_classes
from .pipeline import overlapped
from .postprocess.cpu import decode_end2end, decode_raw, to_input_frame, to_source
from .results import Results

if TYPE_CHECKING:
    from .inputs.frames import Frame, FrameSource
    from .inputs.streams import MultiSource
    from .tracking.trackers import AnyTracker, AnyTrackerConfig

log = logging.getLogger(__name__)

# where save=True writes when no save_dir is given, by call, as Ultralytics' runs/<task>/predict (then predict2, ...)
DEFAULT_SAVE_DIRS = {"predict": Path("runs/predict"), "track": Path("runs/track")}


class Segmenter:
    """Runs a YOLO11-seg (or NMS-in-graph, e.g. YOLO26-seg) model on images: an ONNX file, a TensorRT engine or an
    OpenVINO IR (backend="openvino" runs an ONNX file on OpenVINO; its device is provider_options.openvino_device).

    >>> seg = Segmenter("yolo11n-seg.onnx", conf=0.25)
    >>> for r in seg("images/"):
    ...     print(r.path, r.boxes.xyxy, r.masks.data.shape)
    >>> results = seg.predict("bus.jpg", conf=0.5, classes=[0], save=True)     # this call only; runs/predict
    >>> for frame in frames:
    ...     r = seg.track(frame, persist=True)[0]                             # r.boxes.id: one id per object

    device="cuda" runs the post-processing on the GPU (edgeseg.postprocess.cuda) with the same results; with
    providers "auto" the network then runs on TensorRT or CUDA when onnxruntime offers them, its outputs read in
    place on the GPU (IO binding). A CPU-only onnxruntime runs the network on the CPU and its two outputs are
    uploaded once. No usable GPU is a CudaError, never a fallback to the CPU.
    """

    def __init__(
        self,
        model: str | Path,
        conf: float | None = None,
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
        retina_masks: bool = True,
        backend: str = "auto",
    ):
        cfg = PredictConfig(conf=PredictConfig.conf if conf is None else conf, iou=iou, imgsz=imgsz, max_det=max_det,
                            classes=tuple(classes) if classes is not None and not isinstance(classes, int) else classes,
                            agnostic_nms=agnostic_nms, multi_label=multi_label, batch=batch,
                            providers=providers if isinstance(providers, str) else tuple(providers),
                            provider_options=provider_options, device=device, device_results=device_results,
                            retina_masks=retina_masks, backend=backend)
        self._setup(model, cfg)
        self._conf_given = conf is not None

    @classmethod
    def from_config(cls, model: str | Path, config: PredictConfig) -> Segmenter:
        self = cls.__new__(cls)
        self._setup(model, config)
        self._conf_given = True
        return self

    def _setup(self, model: str | Path, cfg: PredictConfig) -> None:
        require_kernels()
        self.config = cfg
        self.backend: Backend = open_backend(model, cfg.providers, cfg.provider_options, cfg.backend)
        self.model_path = Path(model)
        self._gpu: Any = None
        # frames without a file (arrays, cameras, pushed frames) are named image0.jpg, image1.jpg, ... as Ultralytics
        # names arrays, counted over the Segmenter's life so that two never share a name (and an output file)
        self._unnamed_count = itertools.count()
        # track(persist=True) keeps one tracker across calls, as Ultralytics' predictor does; what it was made from
        self._tracker: AnyTracker | None = None
        self._tracker_from: str | AnyTrackerConfig | None = None
        self._save_dirs: dict[str, Path] = {}  # the default folder of each kind of call, chosen on its first save
        try:
            self.spec = ModelSpec.inspect(self.backend, cfg, self.model_path.name)
            self._pre = self._preprocessor()
            if cfg.device == "cuda":
                from .postprocess.cuda import CudaPostprocessor

                self._gpu = CudaPostprocessor(self.num_classes, cfg, self.end2end, self._gpu_index(),
                                              cfg.device_results)
                if not self.backend.outputs_on_gpu:
                    log.info("%s runs on %s; its outputs are uploaded to the GPU once per batch for "
                             "post-processing", self.model_path.name, self.providers[0])
            elif self.backend.outputs_on_gpu:
                log.info("post-processing runs on the CPU (device='cpu'); device='cuda' keeps the network's "
                         "outputs on the GPU")
        except Exception:
            self.backend.close()
            raise

    def _preprocessor(self) -> Preprocessor:
        spec = self.spec
        return Preprocessor(spec.imgsz, spec.input_dtype, spec.stride, dynamic=spec.dynamic_hw, batch=spec.fixed_batch)

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

    # what the model is (see ModelSpec), under the names users know
    names = property(lambda self: self.spec.names)
    imgsz = property(lambda self: self.spec.imgsz)
    num_classes = property(lambda self: self.spec.num_classes)
    num_protos = property(lambda self: self.spec.num_protos)
    end2end = property(lambda self: self.spec.end2end)
    stride = property(lambda self: self.spec.stride)
    fixed_batch = property(lambda self: self.spec.fixed_batch)

    @property
    def batch_size(self) -> int:
        """Images per network run: the model's fixed batch, else the configured one."""
        return self.spec.fixed_batch or self.config.batch

    @property
    def providers(self) -> tuple[str, ...]:
        return self.backend.providers

    def __call__(self, source: Any, *, conf: float | None = None, iou: float | None = None,
                 classes: int | Iterable[int] | None = None, max_det: int | None = None,
                 agnostic_nms: bool | None = None, stream: bool = False, save: bool = False,
                 save_dir: str | os.PathLike | None = None, strict: bool = True, verbose: bool = False,
                 imgsz: int | tuple[int, int] | None = None, retina_masks: bool | None = None, show: bool = False,
    ) -> list[Results] | Iterator[Results]:
        """seg(source, ...) is seg.predict(source, ...)."""
        return self.predict(source, conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic_nms=agnostic_nms,
                            stream=stream, save=save, save_dir=save_dir, strict=strict, verbose=verbose, imgsz=imgsz,
                            retina_masks=retina_masks, show=show)

    def predict(self, source: Any, *, conf: float | None = None, iou: float | None = None,
                classes: int | Iterable[int] | None = None, max_det: int | None = None,
                agnostic_nms: bool | None = None, stream: bool = False, save: bool = False,
                save_dir: str | os.PathLike | None = None, strict: bool = True, verbose: bool = False,
                imgsz: int | tuple[int, int] | None = None, retina_masks: bool | None = None, show: bool = False,
    ) -> list[Results] | Iterator[Results]:
        """Results for every image of `source`: path, folder, glob, array, video, or a list of these (or any source
        inputs.source.open_source opens), in order.

        conf, iou, classes, max_det, agnostic_nms, retina_masks: this call's settings (None: the Segmenter's own);
        seg.config is not changed (call_config says what the call runs with). stream=True returns a generator that
        runs as it is read, as Ultralytics' stream=True does, instead of a list. save=True writes each annotated
        image (outputs.annotate.plot) to `save_dir`, by default a new runs/predict (runs/predict2, ... when taken)
        chosen on the first such call and kept for the Segmenter's life; an image keeps its file name, a video frame
        is {video}_{frame index}.jpg. Before anything runs, an output that would replace an input is an OutputError.

        An image that cannot be read is a SourceError; with strict=False it is skipped with a warning instead (a
        FrameSource passed in keeps its own setting and counts). Raises ConfigError for a bad setting (and, for
        now, for per-call settings with device="cuda", whose post-processing holds its own).

        Ultralytics' verbose=True logs a line per image (r.verbose() and its ms); imgsz is taken when it is the
        Segmenter's own (the input size is fixed when it is made). retina_masks=True (edgeseg's default) gives masks
        at source resolution, as Ultralytics' retina_masks=True; retina_masks=False leaves them in the network's
        input frame, as Ultralytics' default predict does (masks.data (N, in_h, in_w); masks.xy scaled to the source),
        object for object what a port's old output was. show=True shows each result in an OpenCV window as it comes
        (Ultralytics' show=True); without a GUI build of OpenCV or a display, an OutputError before anything runs
        (edgeseg installs the headless build: `edgeseg track ... --view` shows a video in a browser instead)."""
        _check_flags(stream=stream, save=save, strict=strict, verbose=verbose, show=show)
        self._check_ported(imgsz, show)
        cfg = self.call_config(conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic_nms=agnostic_nms,
                               retina_masks=retina_masks)
        folder = self._save_folder(source, save_dir, "predict") if save else None
        pairs = self._run(source, strict, cfg)
        return self._deliver(pairs if folder is None else self._saved(pairs, folder), stream, verbose, show)

    def track(self, source: Any, *, persist: bool = False,
              tracker: str | os.PathLike | AnyTrackerConfig | None = None, conf: float | None = None,
              iou: float | None = None, classes: int | Iterable[int] | None = None, max_det: int | None = None,
              agnostic_nms: bool | None = None, stream: bool = False, save: bool = False,
              save_dir: str | os.PathLike | None = None, strict: bool = True, verbose: bool = False,
              imgsz: int | tuple[int, int] | None = None, retina_masks: bool | None = None, show: bool = False,
    ) -> list[Results] | Iterator[Results]:
        """predict, with a track id for each object (boxes.id, (N,) int64): the frames of `source` (a video's in
        order, or one image) go through a tracker, which keeps only the objects that belong to a track.

        As in Ultralytics, `seg.track(frame, persist=True)` frame after frame follows objects across calls: with
        persist=True the Segmenter keeps its tracker (made on first use); persist=False starts a fresh one for this
        call (ids from 1), which later persist=True calls continue. `tracker`: a YAML tracker file, the bare name of
        one shipped with edgeseg ("masktrack.yaml", the default: one identity per object when the detector hesitates
        between classes, boxes.track_cls the class it settles on; "bytetrack.yaml" and "botsort.yaml", Ultralytics'
        own, id for id), or a settings object (TrackerConfig, BotSortConfig, MaskTrackConfig). save=True writes to
        runs/track by default.
        conf: as Ultralytics' track, the detector runs at 0.1 (config.TRACK_CONF) unless this call or the Segmenter
        was given one (Segmenter(model, conf=...), from_config), so that the tracker's second association sees the
        low-score detections; on the GPU path the Segmenter's own conf. The other arguments are predict's."""
        _check_flags(persist=persist, stream=stream, save=save, strict=strict, verbose=verbose, show=show)
        self._check_ported(imgsz, show)
        if conf is None and not self._conf_given and self._gpu is None:
            conf = TRACK_CONF
        cfg = self.call_config(conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic_nms=agnostic_nms,
                               retina_masks=retina_masks)
        folder = self._save_folder(source, save_dir, "track") if save else None
        follow = self._tracker_for(tracker, persist)
        pairs = ((frame, follow.update(r)) for frame, r in self._run(source, strict, cfg))
        return self._deliver(pairs if folder is None else self._saved(pairs, folder), stream, verbose, show)

    # track_streams(persist=True) goes on with the trackers of the last call (one per stream), made from this setting
    _stream_trackers: tuple[str | AnyTrackerConfig, dict[int, AnyTracker]] | None = None

    def track_streams(self, sources: Sequence[Any] | MultiSource, *, persist: bool = False,
                      tracker: str | os.PathLike | AnyTrackerConfig | None = None, conf: float | None = None,
                      iou: float | None = None, classes: int | Iterable[int] | None = None,
                      max_det: int | None = None, agnostic_nms: bool | None = None, retina_masks: bool | None = None,
                      depth: int = 2, **source_options: Any) -> Iterator[tuple[int, Results]]:
        """track over several sources at once, as they come: (stream index, its Results) for the frames of all of
        them (inputs.streams.MultiSource reads them: every frame of a file, in order; the newest frame of a camera
        or stream), batched together into one network run (batch_size frames of any streams), the stages
        overlapped as in stream_frames. Each stream has its own tracker, made from `tracker` as track makes one, so
        ids are those track gives that source alone; persist=True goes on with the trackers of the last call.

        `sources`: a list of what open_source opens (`source_options` are its options), or a MultiSource, which
        stays yours to read afterwards: a source that cannot be opened or fails while read ends with a warning and
        its error in `.streams[k].error`, and the others go on. The other arguments are track's."""
        from .inputs.streams import MultiSource
        from .tracking import DEFAULT_TRACKER, load_config, make_tracker

        _check_flags(persist=persist)
        if conf is None and not self._conf_given and self._gpu is None:
            conf = TRACK_CONF  # as track
        cfg = self.call_config(conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic_nms=agnostic_nms,
                               retina_masks=retina_masks)
        owned = not isinstance(sources, MultiSource)
        if owned and isinstance(sources, (str, os.PathLike)):
            raise ConfigError("track_streams takes a list of sources; track follows one")
        given = DEFAULT_TRACKER if tracker is None else tracker
        given = os.fspath(given) if isinstance(given, (str, os.PathLike)) else given
        settings = load_config(given) if isinstance(given, str) else given
        make_tracker(settings)  # a bad setting is a ConfigError now, not at the first frame
        if not persist or self._stream_trackers is None:
            self._stream_trackers = (given, {})
        elif given != self._stream_trackers[0]:
            raise ConfigError(f"the kept trackers were made from {self._stream_trackers[0]!r}, not {given!r}: call "
                              "track_streams(..., persist=False) once to start fresh ones from it")
        trackers = self._stream_trackers[1]

        def run() -> Iterator[tuple[int, Results]]:
            multi = MultiSource(sources, **source_options) if owned else sources
            with multi if owned else nullcontext(multi):
                for frame, result in self.stream_frames(multi, depth, config=cfg):
                    if frame.stream not in trackers:
                        trackers[frame.stream] = make_tracker(settings)
                    yield frame.stream, trackers[frame.stream].update(result)

        return run()

    def call_config(self, *, conf: float | None = None, iou: float | None = None,
                    classes: int | Iterable[int] | None = None, max_det: int | None = None,
                    agnostic_nms: bool | None = None, retina_masks: bool | None = None) -> PredictConfig:
        """seg.config with one call's settings (None: as configured), a new PredictConfig validated as the
        Segmenter's own; a class the model does not have is a ConfigError. On the GPU path (device="cuda") any
        change is a ConfigError for now: its post-processing was built with the Segmenter's settings."""
        if classes is not None and not isinstance(classes, (int, str)):
            classes = tuple(classes)
        cfg = self.config.replace(conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic_nms=agnostic_nms,
                                  retina_masks=retina_masks)
        if cfg == self.config:
            return self.config
        check_classes(cfg.classes, self.num_classes, self.model_path.name)
        if self._gpu is not None:
            raise ConfigError("per-call conf, iou, classes, max_det, agnostic_nms and retina_masks run on the CPU path "
                              "only for now; "
                              "with device='cuda' give them to the Segmenter (Segmenter(model, conf=..., "
                              "device='cuda'))")
        return cfg

    def _tracker_for(self, tracker: str | os.PathLike | AnyTrackerConfig | None, persist: bool) -> AnyTracker:
        """The tracker of a track call: the kept one (persist=True), else a new one from `tracker` (None: the
        default), kept for later persist=True calls."""
        from .tracking import DEFAULT_TRACKER, is_tracker_config, make_tracker

        if tracker is None:
            tracker = DEFAULT_TRACKER
        if not isinstance(tracker, (str, os.PathLike)) and not is_tracker_config(tracker):
            raise ConfigError(f"tracker must be a tracker file (e.g. 'botsort.yaml') or tracker settings, got "
                              f"{type(tracker).__name__}")
        given = os.fspath(tracker) if isinstance(tracker, (str, os.PathLike)) else tracker
        if persist and self._tracker is not None:
            if given != self._tracker_from:  # switching silently would mix two trackers' ids in one video
                raise ConfigError(f"the kept tracker was made from {self._tracker_from!r}, not {given!r}: call "
                                  "track(..., persist=False) once to start a fresh one from it")
            return self._tracker
        self._tracker, self._tracker_from = make_tracker(given), given
        return self._tracker

    def _check_ported(self, imgsz: int | tuple[int, int] | None, show: bool = False) -> None:
        """The Ultralytics arguments a port passes along, taken where they mean what they meant there."""
        if show:
            from .outputs.annotate import check_can_show

            check_can_show()
        if imgsz is not None:
            wanted = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
            if wanted != tuple(self.imgsz):
                raise ConfigError(f"imgsz {imgsz}: this Segmenter runs at {self.imgsz[0]}x{self.imgsz[1]}; the input "
                                  "size is set when it is made (Segmenter(model, imgsz=...))")

    @staticmethod
    def _deliver(pairs: Iterator[tuple[Frame, Results]], stream: bool, verbose: bool = False,
                 show: bool = False) -> list[Results] | Iterator[Results]:
        results = (result for _, result in pairs)
        if verbose:  # Ultralytics' one line per image
            results = (_logged(r) for r in results)
        if show:
            results = (_shown(r) for r in results)
        return results if stream else list(results)

    def _save_folder(self, source: Any, save_dir: str | os.PathLike | None, kind: str) -> Path:
        """Before anything runs: the folder save=True writes `source`'s annotated images to, checked so that no
        output replaces an input (an image of `source`, the model) or another output of this call."""
        from .outputs.files import check_annotated_folder, new_numbered_folder

        if self.config.device_results:
            raise ConfigError("save=True draws masks in host memory, and device_results=True leaves them on the GPU: "
                              "save results yourself after results.to_host()")
        if save_dir is not None and not isinstance(save_dir, (str, os.PathLike)):
            raise ConfigError(f"save_dir must be a folder path, got {type(save_dir).__name__}")
        images = _image_files(source)
        folder = Path(save_dir) if save_dir is not None else self._save_dirs.get(kind)
        if folder is None:
            folder = self._save_dirs[kind] = new_numbered_folder(DEFAULT_SAVE_DIRS[kind]).resolve()
            log.info("annotated images go to %s", folder)
        check_annotated_folder(folder, images, [self.model_path], flag="save_dir")
        return folder

    @staticmethod
    def _saved(pairs: Iterator[tuple[Frame, Results]], folder: Path) -> Iterator[tuple[Frame, Results]]:
        """`pairs`, each result's annotated image written to `folder` as it passes."""
        from .inputs.images import IMAGE_SUFFIXES
        from .outputs.annotate import plot
        from .outputs.files import annotated_name, write_image

        for frame, result in pairs:
            if frame.path is None or Path(frame.path).suffix.lower() in IMAGE_SUFFIXES:
                name = annotated_name(Path(result.path))  # an image file's own name, or image0.jpg, ... for arrays
            else:  # every frame of a video or stream has its path: numbered by the frame's index in it
                name = f"{Path(frame.path.split('?')[0]).stem or 'stream'}_{frame.index}.jpg"
            write_image(folder / name, plot(result))
            yield frame, result

    def stream(self, source: Any, strict: bool = True) -> Iterator[Results]:
        """Like predict, one Results at a time, batch by batch, each stage after the other."""
        for _, result in self._run(source, strict, self.config):
            yield result

    def _run(self, source: Any, strict: bool, cfg: PredictConfig) -> Iterator[tuple[Frame, Results]]:
        """(frame, its Results) for every frame of `source`, post-processed with `cfg`, batch by batch."""
        with self._open(source, strict) as frames:
            for batch in self._batches(frames):
                tensor, letterboxes, pre_ms = self._prepare(self._pre, batch)
                t0 = time.perf_counter()
                outputs = self.infer(tensor)
                infer_ms = (time.perf_counter() - t0) * 1e3
                yield from self._finish(batch, letterboxes, outputs, pre_ms, infer_ms, cfg)

    def stream_frames(self, source: Any, depth: int = 2, strict: bool = True,
                      config: PredictConfig | None = None) -> Iterator[tuple[Frame, Results]]:
        """(frame, its Results) for every frame of `source` (a FrameSource, an iterable of Frame or NumPy images,
        or anything open_source opens), in order, with the stages overlapped (pipeline.overlapped): one thread reads
        and letterboxes the next frames, another runs the network, and the caller's thread decodes the masks and
        does its own work with each result meanwhile. `depth`: batches waiting between stages; `strict` as in
        predict; `config`: the post-processing settings (call_config makes them; None: seg.config). Closing the
        generator early stops both threads."""
        cfg = self.config if config is None else config
        if depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}")
        # several runs at once where the backend's device wants them (OpenVINO's throughput hint); never on the GPU
        # path, whose outputs may sit in buffers the next run overwrites
        in_flight = max(1, int(self.backend.requests_in_flight)) if self._gpu is None else 1
        # each batch in flight needs its own input buffer: up to `depth` queued before the network and, with several
        # runs, up to depth + in_flight more waiting on or in it, one in the network, one being read
        pool = [self._preprocessor() for _ in range(depth + 2 + (depth + in_flight if in_flight > 1 else 0))]
        turns = itertools.count()

        def prepare(batch: list[Frame]) -> tuple:
            return (batch, *self._prepare(pool[next(turns) % len(pool)], batch))

        def infer(item: tuple) -> tuple:
            batch, tensor, letterboxes, pre_ms = item
            t0 = time.perf_counter()
            outputs = self.infer(tensor)
            if self._gpu is not None and self.backend.outputs_reused:
                # the next run writes into these GPU buffers while this batch waits to be post-processed
                outputs = self._gpu.keep(outputs)
            return batch, letterboxes, outputs, pre_ms, (time.perf_counter() - t0) * 1e3

        with self._open(source, strict) as frames:
            yield from overlapped(self._batches(frames), prepare, infer,
                                  lambda item: self._finish(*item, cfg), depth, in_flight)

    def stream_pipelined(self, source: Any, depth: int = 2, strict: bool = True) -> Iterator[Results]:
        """stream_frames without the frames: Results in order, the stages overlapped."""
        for _, result in self.stream_frames(source, depth, strict):
            yield result

    @staticmethod
    def _open(source: Any, strict: bool) -> AbstractContextManager[FrameSource]:
        """`source` as a FrameSource, closed at the end when opened here (a caller's own FrameSource stays the
        caller's, with its own strictness)."""
        from .inputs.frames import FrameSource
        from .inputs.source import open_source

        return nullcontext(source) if isinstance(source, FrameSource) else open_source(source, strict=strict)

    def _batches(self, frames: Iterable[Frame]) -> Iterator[list[Frame]]:
        """Frames in lists of batch_size, the last one possibly shorter."""
        frames = iter(frames)
        while batch := list(itertools.islice(frames, self.batch_size)):
            yield batch

    @staticmethod
    def _prepare(pre: Preprocessor, batch: list[Frame]) -> tuple[np.ndarray, list[Letterbox], float]:
        t0 = time.perf_counter()
        tensor, letterboxes = pre([frame.image for frame in batch])
        return tensor, letterboxes, (time.perf_counter() - t0) * 1e3

    def preprocess(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """BGR uint8 images -> (the network's input batch, each image's letterbox). The batch is a buffer that the
        next call overwrites."""
        return self._pre(images)

    def infer(self, tensor: np.ndarray) -> list[Any]:
        """The network's outputs: on the GPU (OrtValues) when the GPU path can read them there, else host arrays."""
        if self._gpu is not None and self.backend.outputs_on_gpu:
            return self.backend.infer_on_device(tensor)
        return self.backend.infer(tensor)

    def postprocess(self, outputs: list[Any], letterboxes: list[Letterbox], images: list[np.ndarray],
                    paths: list[str | None] | None = None) -> list[Results]:
        """The network's outputs for a batch of `images` (as preprocess letterboxed them) -> one Results each."""
        from .inputs.frames import Frame

        paths = paths if paths is not None else [None] * len(images)
        frames = [Frame(image, k, path or f"array {k}", path=path)
                  for k, (image, path) in enumerate(zip(images, paths, strict=True))]
        return [r for _, r in self._finish(frames, letterboxes, outputs, 0.0, 0.0, self.config)]

    def _finish(self, batch: list[Frame], letterboxes: list[Letterbox], outputs: list[Any], pre_ms: float,
                infer_ms: float, cfg: PredictConfig) -> list[tuple[Frame, Results]]:
        """Network outputs of one batch -> (frame, Results) per frame, post-processed with `cfg`, with ms per stage
        per image in `speed`."""
        t0 = time.perf_counter()
        det, protos = self.spec.split(outputs)
        if self._gpu is not None:
            det, protos = self._gpu.to_device(det), self._gpu.to_device(protos)
        results = [Results(frame.image, frame.path or self._unnamed(), self.names,
                           *self._postprocess(det[k], protos[k], lb, cfg))
                   for k, (frame, lb) in enumerate(zip(batch, letterboxes, strict=True))]
        n = len(batch)
        speed = {"preprocess": pre_ms / n, "inference": infer_ms / n,
                 "postprocess": (time.perf_counter() - t0) * 1e3 / n}
        for r in results:
            r.speed = dict(speed)
        return list(zip(batch, results, strict=True))

    def _unnamed(self) -> str:
        return f"image{next(self._unnamed_count)}.jpg"

    def _postprocess(self, det: Any, protos: Any, letterbox: Letterbox, cfg: PredictConfig) -> tuple:
        """One image's network outputs -> (Boxes, Masks): on the GPU path (device arrays, with the settings it was
        built with: call_config lets no other reach it), or with the CPU kernels and `cfg`."""
        if self._gpu is not None:
            return self._gpu(det, protos, letterbox)
        pred = det.astype(np.float32, copy=False)
        found = decode_end2end(pred, cfg) if self.end2end else decode_raw(pred, self.num_classes, cfg)
        place = to_source if cfg.retina_masks else to_input_frame
        return place(found, protos.astype(np.float32, copy=False), letterbox)

    def warmup(self) -> None:
        """Runs the network once on a blank frame (the session sizes its buffers), then the post-processing on
        that output with one made-up object, so that every kernel is ready before the first real frame (under
        Numba's JIT: compiled, or loaded from its cache; compiled at install, they only touch their memory once):
        a blank frame alone detects nothing and would leave NMS and masks cold."""
        h, w = self.imgsz
        tensor, (letterbox,) = self._pre([np.full((h, w, 3), 114, np.uint8)])
        if self._gpu is not None:
            self.infer(tensor)  # the IO-binding run: buffers allocated (and a CUDA graph captured)
        det, protos = self.spec.split(self.backend.infer(tensor))
        pred = det[0].astype(np.float32)  # a copy: the object is written into it
        protos = protos[0].astype(np.float32, copy=False)
        if self.end2end:
            pred[0, :6] = (w / 4, h / 4, w / 2, h / 2, 1.0, 0.0)
        else:
            pred[:4, 0] = (w / 2, h / 2, w / 4, h / 4)
            pred[4 : 4 + self.num_classes, 0] = 1.0
        if self._gpu is not None:
            pred, protos = self._gpu.to_device(pred), self._gpu.to_device(protos)
        self._postprocess(pred, protos, letterbox, self.config)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "end-to-end" if self.end2end else "raw"
        post = ", post-processing on cuda" if self._gpu is not None else ""
        return (f"Segmenter({self.model_path.name}, {self.num_classes} classes, {kind} head, "
                f"input {self.imgsz[0]}x{self.imgsz[1]}, {self.providers[0]}{post})")


def _image_files(source: Any) -> list[str]:
    """The image files `source` names, listed without reading them (save=True checks its outputs against them):
    none for arrays, videos, cameras, streams and iterators, whose outputs are named by index."""
    from .inputs.frames import Frame, FrameSource, ImageSource
    from .inputs.images import IMAGE_SUFFIXES, expand_source
    from .inputs.source import is_video_source

    if isinstance(source, ImageSource):
        items: list[Any] = source.items
    elif isinstance(source, FrameSource) or is_video_source(source):
        items = []
    elif isinstance(source, (list, tuple)) and source and all(isinstance(item, Frame) for item in source):
        items = [item.path for item in source if item.path is not None]
    elif isinstance(source, (str, os.PathLike, np.ndarray, list, tuple)):
        items = expand_source(source)  # a missing file is the SourceError the run would raise, only sooner
    else:
        items = []  # an iterator: listing it would use it up
    return [os.fspath(i) for i in items
            if isinstance(i, (str, os.PathLike)) and Path(i).suffix.lower() in IMAGE_SUFFIXES]


def _check_flags(**flags: Any) -> None:
    """ConfigError for a yes/no argument given anything but a bool: "no" or 0 would pass silently as a truth value."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r}")


def _logged(result: Results) -> Results:
    h, w = result.orig_shape
    log.info("%s: %dx%d %s%.1fms", result.path, w, h, result.verbose() or "(no detections), ",
             sum(result.speed.values()))
    return result


def _shown(result: Results) -> Results:
    result.show(wait_ms=1)  # Ultralytics' show=True: the window updates frame after frame without waiting for a key
    return result

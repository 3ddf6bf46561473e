"""The `edgeseg` command: parses options and calls the library. `--debug` shows tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..config import BACKENDS, TRACK_CONF, PredictConfig, load_config, parse_imgsz
from ..errors import ConfigError, EdgesegError
from ..integrations import ray as ray_batch  # their commands' parsers; Ray itself is imported only when they run
from ..integrations import serve as ray_serve
from ..integrations import triton as triton_serve

if TYPE_CHECKING:
    from ..inputs.frames import ImageSource
    from ..results import Results
    from ..segmenter import Segmenter


log = logging.getLogger(__name__)

GPU_DEVICES = ("cuda", "gpu", "tensorrt", "trt")  # --device names that put the post-processing on the GPU
MODEL_HELP = "model file: .onnx, a TensorRT .engine / .plan, an OpenVINO .xml or Ultralytics' _openvino_model folder"
BACKEND_HELP = ("what runs the network: auto (by the model file: .onnx onnxruntime, .engine tensorrt, .xml or an "
                "_openvino_model folder openvino), or onnxruntime, tensorrt, openvino (.onnx too)")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,2,5, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported in one line (argparse prints its whole usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgeseg", description="YOLO instance segmentation on the edge.")
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("predict", help="segment images", description="Segment images with a YOLO-seg ONNX model.")
    _add_model_options(p)
    p.add_argument("--save-dir", type=Path, help="write annotated images here")
    p.add_argument("--save-json", type=Path, help="write COCO results for all images to this file")
    p.add_argument("--coco-ids", type=Path, metavar="ANNOTATIONS",
                   help="take --save-json's image ids from this COCO ground-truth file, matched by file name")
    _add_view_options(p, " (a video, camera or stream)")
    _add_output_options(p)
    _add_strict_option(p)

    p = commands.add_parser("isolate", help="cut each object out of its image",
                            description="Cut every detected object out of its image: one PNG per object, "
                                        "named {image}_{class}-{index}.png.")
    _add_model_options(p)
    p.add_argument("--save-dir", type=Path, required=True, help="write the cut-outs here")
    p.add_argument("--background", choices=("black", "transparent"), default="black",
                   help="black: BGR on black; transparent: PNG with alpha (default black)")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--crop", dest="crop", action="store_true", default=True,
                      help="crop to the object's box (default)")
    crop.add_argument("--full", dest="crop", action="store_false", help="keep the full frame size")
    p.add_argument("--method", choices=("mask", "contour"), default="mask",
                   help="cut along the mask (default) or along its filled outline (the contour recipe)")
    p.add_argument("--save-mask", action="store_true", help="also write each binary mask as ..._mask.png")
    p.add_argument("--save-crop", action="store_true",
                   help="also write each box crop with its background as ..._crop.png")
    _add_output_options(p)
    _add_strict_option(p)

    # conflict_handler="resolve": track's --source, given again below, may be repeated (one stream each)
    p = commands.add_parser("track", help="track objects through videos, cameras or streams",
                            description="Segment and track every frame of a video file, camera (0) or stream URL, "
                                        "with stable ids; write an annotated video and per-track cut-outs. Several "
                                        "sources run in one process, their frames batched into one network run, "
                                        "each tracked, written and reported on its own.",
                            conflict_handler="resolve")
    _add_model_options(p)
    p.add_argument("--source", required=True, nargs="+", action="extend",
                   help="a video file, a camera index (0) or a stream URL (rtsp://, http://, ...); several (repeat "
                        "--source or list them) run together")
    p.add_argument("--save", type=Path,
                   help="write the annotated video here (.mp4 or .avi); with several sources a folder, one "
                        "{name}.mp4 per stream (a file's stem, camera0, a URL's host and path)")
    p.add_argument("--tracker", type=Path,
                   help="tracker settings: a YAML file, or the name of one shipped with edgeseg: masktrack.yaml (the "
                        "default: one identity per object when the detector hesitates between classes), "
                        "bytetrack.yaml or botsort.yaml (Ultralytics' own)")
    p.add_argument("--color-by", choices=("class", "track"), default="track", help="colour objects by track (default)")
    p.add_argument("--show-ids", action=argparse.BooleanOptionalAction, default=True, help="label objects with #id")
    p.add_argument("--isolate-dir", type=Path, help="write each track's cut-outs to DIR/{class}-{id}/{frame}.png")
    _add_view_options(p)
    _add_output_options(p)

    p = commands.add_parser("benchmark", help="per-stage latency on this machine, optionally against Ultralytics",
                            description="Time every stage of edgeseg (preprocess, inference, decode_nms, masks, "
                                        "contours, isolation, annotation) on this machine: mean, p50, p90, p99, max "
                                        "and fps, several models, backends and providers side by side, optionally "
                                        "interleaved with Ultralytics' predict on the same model and with the bare "
                                        "runtime; cold start and memory; mAP with --val; a table, and JSON and plots "
                                        "with --out.")
    p.add_argument("--model", action="append", required=True,
                   help="model file; repeat it or separate by commas to compare several (e.g. FP32,FP16,INT8)")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument("--source", help="images, a folder, a glob pattern or a video (default: synthetic scenes)")
    frames.add_argument("--synthetic", metavar="WxH", help="size of the synthetic scenes (default 1280x720)")
    p.add_argument("--objects", type=int, default=20, help="shapes per synthetic scene (default 20)")
    p.add_argument("--providers", default="auto",
                   help="onnxruntime providers, comma-separated: each model runs on each (e.g. cpu,cuda; default auto)")
    p.add_argument("--backends", default="auto",
                   help="what runs the network, comma-separated: each model runs on each (auto: by the model file; "
                        "e.g. onnxruntime,openvino side by side on an .onnx)")
    p.add_argument("--devices", default="cpu",
                   help="where the post-processing runs, comma-separated: cpu and/or cuda (the GPU path; default cpu)")
    p.add_argument("--imgsz", type=parse_imgsz_arg, help="input size: 640 or 480,640 (model's own)")
    p.add_argument("--batch", type=int, default=1, help="images per network run (default 1)")
    p.add_argument("--warmup", type=int, default=20, help="untimed iterations first (default 20)")
    p.add_argument("--iters", type=int, default=200, help="timed iterations (default 200)")
    p.add_argument("--compare", action="append", default=[], metavar="ultralytics,bare",
                   help="also run, interleaved on the same frames: ultralytics, Ultralytics' predict on the same model "
                        "(needs the export extra); bare, the network alone on its runtime, without edgeseg")
    p.add_argument("--video", action="store_true", help="also measure pipelined against sequential video throughput")
    p.add_argument("--no-startup", dest="startup", action="store_false",
                   help="skip the cold-start and memory measurements (fresh processes, about half a minute for the "
                        "first model and backend, a quarter for each other one)")
    p.add_argument("--val", metavar="DATA", type=Path,
                   help="also score each edgeseg run's box and mask mAP on this labelled dataset (data.yaml, as for "
                        "edgeseg val; needs the val extra): FP32 against INT8 on each backend, say")
    p.add_argument("--out", type=Path, help="write benchmark.json and the plots into this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    p = commands.add_parser("export", help="export a YOLO-seg checkpoint to ONNX, TensorRT or OpenVINO",
                            description="Export a YOLO-seg .pt checkpoint to ONNX (FP32, FP16, INT8 QDQ), a TensorRT "
                                        "engine or an OpenVINO IR (FP32, FP16, INT8 by NNCF), optionally verified "
                                        "against the checkpoint. Needs the export extra: "
                                        "pip install 'edgeseg[export]'.")
    p.add_argument("checkpoint", help="YOLO-seg checkpoint (.pt), e.g. yolo11n-seg.pt (.onnx or .engine with --triton)")
    p.add_argument("--format", choices=("onnx", "engine", "openvino"), default="onnx",
                   help="onnx (default), a TensorRT engine, or an OpenVINO IR (name_openvino_model/; --half, --int8)")
    p.add_argument("--imgsz", default="640", help="input size: 640 or 480,640 (rounded up to the stride)")
    p.add_argument("--batch", type=int, default=1, help="batch size (the largest one with --dynamic)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and input size")
    p.add_argument("--half", action="store_true", help="FP16 weights")
    p.add_argument("--int8", action="store_true", help="INT8: QDQ ONNX for CPUs, or an INT8 engine (needs --calib-dir)")
    p.add_argument("--calib-dir", type=Path, help="folder of typical images for INT8 calibration")
    simplify = p.add_mutually_exclusive_group()
    simplify.add_argument("--simplify", dest="simplify", action="store_true", default=True, help="onnxslim (default)")
    simplify.add_argument("--no-simplify", dest="simplify", action="store_false", help="keep the graph as traced")
    p.add_argument("--opset", type=int, help="ONNX opset (default: Ultralytics' choice)")
    p.add_argument("--nms", action="store_true", help="NMS in the graph")
    p.add_argument("--out", type=Path, help="output file (default: beside the checkpoint)")
    p.add_argument("--workspace", type=float, default=4.0, help="TensorRT workspace in GiB (default 4)")
    p.add_argument("--timing-cache", type=Path, help="TensorRT timing cache file, reused across builds")
    p.add_argument("--verify", action="store_true",
                   help="compare the export with the checkpoint; exit 1 if they differ")
    p.add_argument("--verify-images", nargs="+", help="images for --verify (default: the shared validation images)")
    p.add_argument("--triton", type=Path, metavar="REPO",
                   help="write a Triton model repository for the model (an .onnx or .engine given directly, or the "
                        "export of a .pt) into the new folder REPO")
    p.add_argument("--triton-max-batch", type=int, default=8, help="largest batch Triton gathers per stage (8)")
    p.add_argument("--triton-kind", choices=("gpu", "cpu"), default="gpu", help="where Triton runs the network")
    p.add_argument("--quiet", action="store_true", help="only errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    p = commands.add_parser("val", help="box and mask mAP on a labelled dataset (data.yaml)",
                            description="Score a model on the val: images of an Ultralytics-format segmentation "
                                        "dataset: box and mask mAP50 and mAP50-95, overall and per class, with "
                                        "pycocotools' COCOeval. Needs the val extra: pip install 'edgeseg[val]'.")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", required=True, help="data.yaml: path:, val: (a folder of images or a .txt list), names:")
    p.add_argument("--imgsz", type=parse_imgsz_arg, help="input size: 640 or 480,640 (model's own)")
    p.add_argument("--conf", type=float, default=0.001, help="confidence threshold (0.001, as Ultralytics' val)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (0.7)")
    p.add_argument("--max-det", type=int, default=300, help="most detections per image (300)")
    p.add_argument("--batch", type=int, default=1, help="images per network run (dynamic-batch models)")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--device", help="cpu, cuda, cuda:N or tensorrt[:N]: the network's provider; "
                                         "openvino:DEVICE (CPU, GPU, NPU, AUTO): the OpenVINO backend on that device")
    device.add_argument("--providers", help="onnxruntime providers in order, comma-separated, or auto")
    p.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--threads", type=int, help="ONNX Runtime's or OpenVINO's CPU threads")
    p.add_argument("--save-json", type=Path, help="also write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # the rest of what predict_config reads; multi-label NMS as Ultralytics' val does
    p.set_defaults(config=None, classes=None, agnostic_nms=None, multi_label=True, retina_masks=None, trt_fp16=None,
                   trt_cache=None)

    p = commands.add_parser("demo", help="run the built-in demo (no arguments, no network)",
                            description="Segment a few synthetic scenes with the demo model shipped in the package "
                                        "and write annotated images, isolated objects and a timing summary.")
    p.add_argument("--out", type=Path, help="output folder (default: a new runs/demo folder)")
    p.add_argument("--images", type=int, default=4, help="number of demo scenes (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo scenes (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    ray_batch.add_command(commands)
    ray_serve.add_command(commands)
    triton_serve.add_command(commands)
    return parser


def _add_model_options(p: argparse.ArgumentParser, source: str = "image files, folders or glob patterns") -> None:
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--source", required=True, nargs="+", help=source)
    p.add_argument("--config", help="YAML settings file, or the shipped default.yaml; flags override it")
    p.add_argument("--conf", type=float, help="confidence threshold (0.25; track: 0.1, as Ultralytics)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    p.add_argument("--imgsz", type=parse_imgsz_arg, help="input size: 640 or 480,640 (model's own)")
    p.add_argument("--max-det", type=int, help="most detections per image (300)")
    p.add_argument("--classes", type=_int_list, help="keep only these class ids, e.g. 0,2")
    p.add_argument("--agnostic-nms", action="store_true", default=None, help="NMS across classes")
    p.add_argument("--multi-label", action="store_true", default=None, help="one detection per box and class")
    p.add_argument("--retina-masks", action=argparse.BooleanOptionalAction, default=None,
                   help="masks at source resolution (the default); --no-retina-masks: in the network's input frame, "
                        "scaled to the source as Ultralytics' default predict (retina_masks=False) does")
    p.add_argument("--batch", type=int, help="images per network run (dynamic-batch models)")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--device", help="cpu, cuda, cuda:N or tensorrt[:N]: the network's provider; cuda and tensorrt "
                                         "also run the post-processing on that GPU (numba.cuda); openvino:DEVICE "
                                         "(CPU, GPU, NPU, AUTO): the OpenVINO backend on that device")
    device.add_argument("--providers", help="onnxruntime providers in order, comma-separated, or auto")
    p.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--threads", type=int, help="ONNX Runtime's or OpenVINO's CPU threads (one per core); fewer leave "
                                               "cores free for a video's reading, drawing and writing")
    p.add_argument("--trt-fp16", action="store_true", default=None,
                   help="onnxruntime's TensorRT provider: allow FP16 kernels")
    p.add_argument("--trt-cache", metavar="DIR",
                   help="onnxruntime's TensorRT provider: keep built engines in DIR (created), so later runs "
                        "start fast")


def _add_strict_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image that cannot be read (default: skip it, warn, list it at the end)")


def _add_view_options(p: argparse.ArgumentParser, what: str = "") -> None:
    from .view import DEFAULT_FPS, DEFAULT_WIDTH

    p.add_argument("--view", type=_view_address, metavar="[HOST:]PORT",
                   help=f"show the live annotated video{what} and its numbers in a browser at http://HOST:PORT/ "
                        "(HOST 127.0.0.1 unless given; 0.0.0.0 for other machines: unauthenticated; port 0: a free "
                        "one); the address is printed as 'view: URL'")
    p.add_argument("--view-fps", type=float, default=DEFAULT_FPS,
                   help=f"most frames a second the view sends per stream (default {DEFAULT_FPS:g})")
    p.add_argument("--view-width", type=int, default=DEFAULT_WIDTH,
                   help=f"the view's frames are scaled down to this width in pixels (default {DEFAULT_WIDTH})")


def _view_address(text: str) -> tuple[str, int]:
    from .view import parse_address

    try:
        return parse_address(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _open_view(args: argparse.Namespace, names: list[str]):
    """The started live view of --view, its address printed as soon as it listens; None without --view."""
    if getattr(args, "view", None) is None:
        return None
    from .view import LiveView

    view = LiveView(names, *args.view, fps=args.view_fps, width=args.view_width).start()
    print(f"view: {view.url}", file=sys.stderr, flush=True)
    return view


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true", help="one line per image")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def parse_imgsz_arg(text: str) -> tuple[int, int]:
    try:
        return parse_imgsz(text)  # type: ignore[return-value]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def predict_config(args: argparse.Namespace) -> PredictConfig:
    """Defaults, then the YAML file, then flags."""
    cfg = load_config(args.config) if args.config else PredictConfig()
    providers = device = None
    backend = getattr(args, "backend", None)
    if args.device:
        providers = (args.device,)
        # one switch: a GPU provider asked for by --device runs the post-processing on that GPU too
        device = "cuda" if args.device.partition(":")[0].lower() in GPU_DEVICES else "cpu"
        if args.device.partition(":")[0].lower() == "openvino" and backend is None:
            backend = "openvino"  # on the command line "openvino" is the OpenVINO backend, not ONNX Runtime's provider
    elif args.providers:
        providers = "auto" if args.providers == "auto" else tuple(p for p in args.providers.split(",") if p)
    options = cfg.provider_options.replace(trt_fp16=args.trt_fp16, trt_engine_cache=args.trt_cache,
                                           cpu_threads=args.threads)
    return cfg.replace(conf=args.conf, iou=args.iou, imgsz=args.imgsz, max_det=args.max_det, classes=args.classes,
                       agnostic_nms=args.agnostic_nms, multi_label=args.multi_label,
                       retina_masks=args.retina_masks, batch=args.batch, providers=providers,
                       provider_options=options, device=device, backend=backend)


def _open_images(args: argparse.Namespace) -> ImageSource:
    """The run's images, listed once before anything is written; --strict: the first unreadable one ends the run,
    else it is skipped, counted and reported at the end."""
    from ..inputs.frames import ImageSource

    return ImageSource(args.source, strict=args.strict)


def _config_files(args: argparse.Namespace) -> list[str]:
    """The settings files of the run: inputs too, which no output may replace."""
    files = (args.model, args.config, getattr(args, "tracker", None), getattr(args, "coco_ids", None))
    return [f for f in files if f is not None]


def _segment_each(args: argparse.Namespace, images: ImageSource,
                  handle: Callable[[int, str, Results], None]) -> tuple[int, int, dict, str]:
    """Runs the model over `images` with a progress bar, calling handle(k, file name, result) for each image read.

    Returns (images segmented, objects, total ms by stage, provider)."""
    from ..segmenter import Segmenter
    from .progress import Progress

    cfg = predict_config(args)
    totals = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    objects = done = 0
    total = images.frame_count or 0
    with Segmenter.from_config(args.model, cfg) as seg, \
            Progress(total, args.command, enabled=not args.quiet and total > 1) as bar:
        _warn_fixed_batch(args, seg)
        for k, r in enumerate(seg.stream(images)):
            objects += len(r)
            done += 1
            for stage in totals:
                totals[stage] += r.speed[stage]
            handle(k, Path(r.path).name, r)
            if args.verbose:
                bar.write(f"{k + 1}/{total} {r!r} {sum(r.speed.values()):.1f} ms")
            bar.update()
    return done, objects, totals, seg.providers[0]


def _warn_fixed_batch(args: argparse.Namespace, seg: Segmenter) -> None:
    if args.batch and seg.fixed_batch and args.batch != seg.fixed_batch:
        log.warning("--batch %d: %s takes batches of exactly %d images (exported without dynamic=True), so it runs %d "
                    "at a time", args.batch, seg.model_path.name, seg.fixed_batch, seg.fixed_batch)


def _report_skipped(images: ImageSource) -> None:
    """The images a run skipped, listed at its end (each was also warned about as it happened)."""
    if images.skipped:
        print(f"edgeseg: warning: skipped {len(images.skipped)} of {images.frame_count} images that could not be "
              "read (--strict stops at the first):", file=sys.stderr)
        for why in images.skipped:
            print(f"  {why}", file=sys.stderr)


def _summary(images: int, objects: int, totals: dict, provider: str) -> str:
    per = ", ".join(f"{stage} {t / max(images, 1):.1f}" for stage, t in totals.items())
    return f"{images} images, {objects} objects; ms per image: {per}; on {provider}"


def run_predict(args: argparse.Namespace) -> int:
    from ..inputs.source import is_video_source
    from ..outputs.annotate import plot
    from ..outputs.coco import image_ids
    from ..outputs.files import annotated_name, check_annotated_folder, check_not_inputs, write_image, write_json

    if len(args.source) == 1 and is_video_source(args.source[0]):
        if args.save_json:
            raise ConfigError("--save-json is for images; for a video use --save-dir (an annotated video)")
        name = Path(args.source[0]).stem if not args.source[0].isdigit() and "://" not in args.source[0] else "stream"
        return _run_video(args, args.source[0], args.save_dir / f"{name}.mp4" if args.save_dir else None, tracked=False)

    if args.view is not None:
        raise ConfigError("--view shows a video, camera or stream live; for images use --save-dir")
    coco: list[dict] = []

    def handle(k: int, name: str, r: Results) -> None:
        if args.save_dir:
            write_image(args.save_dir / annotated_name(Path(name)), plot(r))
        if args.save_json:
            coco.extend(r.to_coco(image_id=ids[r.path]))

    images = _open_images(args)
    items = images.items
    if args.coco_ids and not args.save_json:
        raise ConfigError("--coco-ids names the ids of --save-json's records: give --save-json too")
    # COCO wants integer image ids: decided for the whole run before it starts (see outputs.coco.image_ids)
    ids = image_ids(items, args.coco_ids) if args.save_json else {}
    # before the model loads: no output may land on an input of this run
    if args.save_dir:
        check_annotated_folder(args.save_dir, items, _config_files(args))
    check_not_inputs({"--save-json": args.save_json}, items + _config_files(args))
    counts = _segment_each(args, images, handle)
    if args.save_json:
        write_json(args.save_json, coco)
    _report_skipped(images)
    if not args.quiet:
        print(_summary(*counts))
        if args.save_dir:
            print(f"annotated images in {args.save_dir}")
        if args.save_json:
            print(f"COCO results in {args.save_json}")
    return 0


def run_isolate(args: argparse.Namespace) -> int:
    from ..config import IsolateOptions
    from ..outputs.files import check_folder_holds_no_inputs, check_output_folder

    options = IsolateOptions(args.background, args.crop, args.method)  # checked before the model loads
    images = _open_images(args)
    items = images.items
    # cut-outs are named {stem}_{label}-{index}.png: never an input's name, but one for every input of that stem; and
    # a folder that holds inputs could hold one of exactly such a name
    check_output_folder(args.save_dir, items, lambda path: path.stem, replaces_input=False)
    check_folder_holds_no_inputs(args.save_dir, items + _config_files(args), "--save-dir")
    written: list[Path] = []

    def handle(k: int, name: str, r: Results) -> None:
        written.extend(r.save_isolated(args.save_dir, **vars(options), save_mask=args.save_mask,
                                       save_crop=args.save_crop))

    counts = _segment_each(args, images, handle)
    _report_skipped(images)
    if not args.quiet:
        print(_summary(*counts))
        print(f"{len(written)} files in {args.save_dir}")
    return 0


def _video_annotator(color_by: str = "class", show_ids: bool = True):
    from ..outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose

    return compose(MaskAnnotator(color_by=color_by), BoxAnnotator(color_by=color_by),
                   LabelAnnotator(color_by=color_by, show_id=show_ids))


def _run_video(args: argparse.Namespace, source: str | list[str], save: Path | None, tracked: bool) -> int:
    """One video, camera or stream (process_video), or several at once (a list: process_streams, `save` a folder;
    exit code 1 when one of them failed, once the others have run to their end)."""
    from ..inputs.images import expand_source
    from ..inputs.source import is_video_source
    from ..inputs.streams import stream_names
    from ..outputs.files import check_folder_holds_no_inputs, check_not_inputs
    from ..segmenter import Segmenter
    from ..tracking import DEFAULT_TRACKER, load_config, make_tracker
    from .process_streams import check_stream_outputs, process_streams
    from .process_video import process_video

    isolate_dir = getattr(args, "isolate_dir", None)
    several = isinstance(source, list)
    # before the model loads: no output may land on an input of this run
    if several:
        check_stream_outputs(source, stream_names(source), save, isolate_dir, _config_files(args),
                             flags=("--save", "--isolate-dir"))
    else:
        inputs = [source] if is_video_source(source) else expand_source(source)
        check_not_inputs({"--save": save}, inputs + _config_files(args))
        if isolate_dir is not None:
            check_folder_holds_no_inputs(isolate_dir, inputs, "--isolate-dir")
    tracker = settings = None
    if tracked:
        settings = load_config(args.tracker or DEFAULT_TRACKER)  # one tracker per stream is made from it
        tracker = make_tracker(settings)
    annotator = _video_annotator(getattr(args, "color_by", "class"), getattr(args, "show_ids", True))
    cfg = predict_config(args)
    if tracked and args.conf is None and args.config is None:
        cfg = cfg.replace(conf=TRACK_CONF)  # as Segmenter.track: the tracker's second association needs them
    # the stages share the cores: ONNX Runtime's threads must not spin while the others work
    # OpenVINO (only it reads the hint): several runs in flight, its throughput mode, unless a hint was given
    cfg = cfg.replace(provider_options=cfg.provider_options.replace(
        cpu_spinning=False, openvino_hint=cfg.provider_options.openvino_hint or "throughput"))
    # the view listens before the model loads: a browser opened at once waits for the first frame
    view = _open_view(args, stream_names(source if several else [source]))
    with view or contextlib.nullcontext(), Segmenter.from_config(args.model, cfg) as seg:
        _warn_fixed_batch(args, seg)
        if several:
            report = process_streams(seg, source, tracker=settings, annotator=annotator, save_dir=save,
                                     isolate_dir=isolate_dir, progress=not args.quiet, view=view)
        else:
            report = process_video(seg, source, tracker=tracker, annotator=annotator, save=save,
                                   isolate_dir=isolate_dir, progress=not args.quiet, view=view)
    if not args.quiet:
        print(report.format())
    if several and report.failed:
        failed = "; ".join(f"{s.name}: {s.error}" for s in report.failed)
        print(f"edgeseg: warning: {len(report.failed)} of {len(source)} streams failed (the others ran to their "
              f"end): {failed}", file=sys.stderr)
        return 1
    return 0


def run_track(args: argparse.Namespace) -> int:
    if len(args.source) > 1:
        return _run_video(args, args.source, args.save, tracked=True)
    return _run_video(args, args.source[0], args.save, tracked=True)


def run_val(args: argparse.Namespace) -> int:
    from ..segmenter import Segmenter
    from .val import load_data, validate

    cfg = predict_config(args)
    load_data(args.data)  # a bad data.yaml fails before the model loads
    with Segmenter.from_config(args.model, cfg) as seg:
        report = validate(seg, args.data, imgsz=cfg.imgsz, conf=cfg.conf, iou=cfg.iou, batch=cfg.batch,
                          max_det=cfg.max_det, progress=not args.quiet, save_json=args.save_json)
    print(report.format())
    if args.save_json:
        print(f"report in {args.save_json}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as demo

    report = demo(args.out, images=args.images, seed=args.seed, progress=not args.quiet)
    print(report.format())
    return 0


def _split(values: list[str]) -> list[str]:
    return [v.strip() for text in values for v in text.split(",") if v.strip()]


def run_benchmark_cmd(args: argparse.Namespace) -> int:
    from .benchmark import run_benchmark
    from .benchmark.report import format_table

    synthetic = (1280, 720)
    if args.synthetic:
        width, _, height = args.synthetic.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ConfigError(f"--synthetic takes a size like 1280x720, got {args.synthetic!r}")
        synthetic = (int(width), int(height))
    report = run_benchmark(_split(args.model), source=args.source, synthetic=synthetic, objects=args.objects,
                           providers=_split([args.providers]), imgsz=args.imgsz, batch=args.batch, warmup=args.warmup,
                           iters=args.iters, compare=_split(args.compare), out_dir=args.out, video=args.video,
                           progress=not args.quiet, startup=args.startup, devices=_split([args.devices]),
                           backends=_split([args.backends]), val=args.val)
    print(format_table(report))
    if args.out:
        plots = report.get("plots") or []
        print(f"report in {args.out / 'benchmark.json'}" + (f", {len(plots)} plots beside it" if plots else
                                                            " (no plots: pip install 'edgeseg[plots]')"))
    return 0


def run_export(args: argparse.Namespace) -> int:
    import importlib.util

    if args.triton is not None and Path(args.checkpoint).suffix.lower() in (".onnx", ".engine", ".plan"):
        from edgeseg_export.triton_repo import run_from_args

        run_from_args(args, args.checkpoint)  # a model file as it is: nothing to export first
        return 0
    missing = [m for m in ("ultralytics", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"edgeseg export needs {' and '.join(missing)}: pip install 'edgeseg[export]'")
    from edgeseg_export import export

    if args.format == "openvino" and args.triton is not None:
        raise ConfigError("--triton writes a repository for an .onnx or .engine model, not an OpenVINO IR")
    if args.quiet:
        from ultralytics.utils import LOGGER

        LOGGER.setLevel(logging.WARNING)
    result = export(args.checkpoint, args.format, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic,
                    half=args.half, int8=args.int8, calib_dir=args.calib_dir, simplify=args.simplify, opset=args.opset,
                    nms=args.nms, out=args.out, workspace_gib=args.workspace, timing_cache=args.timing_cache,
                    verify_after=args.verify, verify_images=args.verify_images)
    print(f"exported {result.path}")
    if result.report is not None:
        print(result.report.format())
        if not result.report.passed:
            print(f"edgeseg: error: {result.path.name} disagrees with {Path(args.checkpoint).name} beyond the "
                  f"{result.report.precision} tolerances (the file is kept for inspection)", file=sys.stderr)
            return 1
    if args.triton is not None:
        from edgeseg_export.triton_repo import run_from_args

        run_from_args(args, result.path)
    return 0


COMMANDS = {"predict": run_predict, "isolate": run_isolate, "track": run_track, "export": run_export, "demo": run_demo,
            "benchmark": run_benchmark_cmd, "val": run_val, "batch": ray_batch.run, "serve": ray_serve.run,
            "serve-triton": triton_serve.run}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so that a stopped run ends the way an interrupted
    one does: files being written are finished or removed, never left half-written or as temporaries."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    in_main = threading.current_thread() is threading.main_thread()  # only there may signal handlers be set
    on_term = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return COMMANDS[args.command](args)
    except EdgesegError as e:
        if args.debug:
            raise
        print(f"edgeseg: error: {e}", file=sys.stderr)
        return 1
    except Terminated:
        print("edgeseg: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("edgeseg: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure still gets one line; --debug shows where
        if args.debug:
            raise
        print(f"edgeseg: unexpected error: {type(e).__name__}: {e} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


if __name__ == "__main__":
    sys.exit(main())

"""The `edgeseg` command: parses options and calls the library. `--debug` shows tracebacks."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import PredictConfig, load_config, parse_imgsz
from .errors import ConfigError, EdgesegError


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,2,5, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeseg", description="YOLO instance segmentation on the edge.")
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("predict", help="segment images", description="Segment images with a YOLO-seg ONNX model.")
    p.add_argument("--model", required=True, help="ONNX model file")
    p.add_argument("--source", required=True, nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--config", help="YAML settings file (e.g. configs/default.yaml); flags override it")
    p.add_argument("--conf", type=float, help="confidence threshold (0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    p.add_argument("--imgsz", type=parse_imgsz_arg, help="input size: 640 or 480,640 (model's own)")
    p.add_argument("--max-det", type=int, help="most detections per image (300)")
    p.add_argument("--classes", type=_int_list, help="keep only these class ids, e.g. 0,2")
    p.add_argument("--agnostic-nms", action="store_true", default=None, help="NMS across classes")
    p.add_argument("--multi-label", action="store_true", default=None, help="one detection per box and class")
    p.add_argument("--batch", type=int, help="images per network run (dynamic-batch models)")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--device", help="cpu, cuda, cuda:N or tensorrt")
    device.add_argument("--providers", help="onnxruntime providers in order, comma-separated, or auto")
    p.add_argument("--save-dir", type=Path, help="write annotated images here")
    p.add_argument("--save-json", type=Path, help="write COCO results for all images to this file")
    p.add_argument("--verbose", action="store_true", help="one line per image")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def parse_imgsz_arg(text: str) -> tuple[int, int]:
    try:
        return parse_imgsz(text)  # type: ignore[return-value]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def predict_config(args: argparse.Namespace) -> PredictConfig:
    """Defaults, then the YAML file, then flags."""
    cfg = load_config(args.config) if args.config else PredictConfig()
    providers = None
    if args.device:
        providers = (args.device,)
    elif args.providers:
        providers = "auto" if args.providers == "auto" else tuple(p for p in args.providers.split(",") if p)
    return cfg.replace(conf=args.conf, iou=args.iou, imgsz=args.imgsz, max_det=args.max_det, classes=args.classes,
                       agnostic_nms=args.agnostic_nms, multi_label=args.multi_label, batch=args.batch,
                       providers=providers)


def run_predict(args: argparse.Namespace) -> int:
    from .draw import plot
    from .files import write_image, write_json
    from .progress import Progress
    from .segmenter import Segmenter
    from .sources import expand_source

    cfg = predict_config(args)
    items = expand_source(args.source)
    coco: list[dict] = []
    totals = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    objects = 0
    with Segmenter.from_config(args.model, cfg) as seg, Progress(len(items), "predict", enabled=not args.quiet and len(items) > 1) as bar:
        for k, r in enumerate(seg.stream(items)):
            objects += len(r)
            for stage in totals:
                totals[stage] += r.speed[stage]
            name = Path(r.path).name if r.path else f"image{k}.jpg"
            if args.save_dir:
                write_image(args.save_dir / name, plot(r))
            if args.save_json:
                records = r.to_coco(image_id=k if r.path is None else None)
                for rec in records:
                    rec["file_name"] = name
                coco.extend(records)
            if args.verbose:
                print(f"{k + 1}/{len(items)} {r!r} {sum(r.speed.values()):.1f} ms", file=sys.stderr if not args.quiet else sys.stdout)
            bar.update()
    if args.save_json:
        write_json(args.save_json, coco)
    if not args.quiet:
        n = len(items)
        per = ", ".join(f"{stage} {t / n:.1f}" for stage, t in totals.items())
        print(f"{n} images, {objects} objects; ms per image: {per}; on {seg.providers[0]}")
        if args.save_dir:
            print(f"annotated images in {args.save_dir}")
        if args.save_json:
            print(f"COCO results in {args.save_json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    try:
        if args.command == "predict":
            return run_predict(args)
        parser.error(f"unknown command {args.command}")
    except EdgesegError as e:
        if args.debug:
            raise
        print(f"edgeseg: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgeseg: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure still gets one line; --debug shows where
        if args.debug:
            raise
        print(f"edgeseg: unexpected error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

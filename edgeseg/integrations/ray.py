"""Ray Data: archives of images and videos segmented on a Ray cluster (pip install "edgeseg[ray]").

One Segmenter per actor of an actor pool: `segment_dataset` maps batches of images to Results.to_records rows;
`track_videos` gives each video to one task, which tracks it from its first frame to its last with a fresh tracker
(a video's frames are never split between actors: tracking is stateful). `run_batch`, behind `edgeseg batch`, does
both for a folder and writes every row into one Parquet or JSON-lines file.

    >>> import ray.data
    >>> from edgeseg.integrations.ray import segment_dataset
    >>> ds = ray.data.read_binary_files("s3://bucket/images", include_paths=True)
    >>> segment_dataset(ds, "yolo11n-seg.onnx", actors=4, conf=0.4).write_parquet("s3://bucket/detections")

Measured on a 2-core machine with Ray 2.60: an actor pool of fixed size with fractional CPUs per actor (1 CPU per
actor on 2 CPUs deadlocked the read stage), and ONNX Runtime with one intra-op thread per actor (faster than its
default there). Rows come out in no particular order.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, OutputError, SourceError
from ..inputs.frames import Frame
from ..inputs.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image, to_bgr
from ..inputs.source import open_source
from ..outputs.files import atomic_file, check_folder_holds_no_inputs, check_not_inputs, exists, same_file
from .common import ERROR_COLUMN, decode_image, error_row, open_segmenter, records_table

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

log = logging.getLogger(__name__)

DEFAULT_ACTORS = 2
DEFAULT_CPUS_PER_ACTOR = 0.5  # fractional: a whole CPU per actor left Ray Data's other stages none on a small machine
DEFAULT_THREADS = 1  # ONNX Runtime intra-op threads per actor: the actors, not the threads, use the cores
DEFAULT_BATCH_SIZE = 8  # images per call of an actor
FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl"}
OUTPUT_STEM = "detections"
ROWS_PER_TABLE = 4096  # a video task hands on its rows in tables of about this many


class SegmentImages:
    """Ray Data UDF (a callable class for Dataset.map_batches, one Segmenter per actor): a batch of images ->
    a pyarrow.Table of Results.to_records rows (common.record_schema()), one per object.

    The batch holds the images as a `path` column (files every worker can read: read with edgeseg's read_image), a
    `bytes` column (encoded files, e.g. ray.data.read_binary_files(..., include_paths=True); `path`, when there,
    names them) or an `image` column of RGB arrays (ray.data.read_images, which decodes with Pillow: results may
    differ slightly from edgeseg's own reading). An image that cannot be read is skipped with a warning and stands
    in the output as one row with its `error` (everything else null); run_batch takes those rows out and counts them.
    """

    def __init__(self, model: str | os.PathLike, threads: int | None = DEFAULT_THREADS, **settings: Any):
        self.segmenter = open_segmenter(model, threads, settings, warmup=True)

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        frames, rows = [], []
        for k, (name, read) in enumerate(_batch_images(batch)):
            try:
                frames.append(Frame(read(), k, name, path=name))
            except SourceError as e:
                log.warning("skipped: %s", e)
                rows.append(error_row(name, str(e)))
        for result in self.segmenter.predict(frames) if frames else ():
            rows.extend(result.to_records())
        return records_table(rows)


class TrackVideos:
    """Ray Data UDF for Dataset.map_batches (one Segmenter per actor): a batch of rows with a `path` column, each a
    video file every worker can read -> a pyarrow.Table of Results.to_records(frame=index) rows of every frame, with
    track ids. Each video is tracked on its own, with a fresh tracker (Segmenter.track(persist=False)), start to end
    in this one call. A video that cannot be opened stands in the output as one row with its `error`; frames that
cannot be decoded are skipped with a warning (the others keep their own indices)."""

    def __init__(self, model: str | os.PathLike, threads: int | None = DEFAULT_THREADS,
                 tracker: str | os.PathLike | None = None, **settings: Any):
        self.segmenter = open_segmenter(model, threads, settings, warmup=True)
        self.tracker = None if tracker is None else os.fspath(tracker)

    def __call__(self, batch: Mapping[str, Any]) -> Iterator[pa.Table]:
        for path in batch["path"]:
            try:
                for rows in self.track(str(path)):
                    yield records_table(rows)
            except SourceError as e:
                log.warning("skipped: %s", e)
                yield records_table([error_row(str(path), str(e))])

    def track(self, path: str, rows_per_table: int = ROWS_PER_TABLE) -> Iterator[list[dict[str, Any]]]:
        """The rows of every frame of the video `path`, frame by frame, handed on every `rows_per_table` rows (a
        long video's rows never wait in memory all together)."""
        indices: collections.deque[int] = collections.deque()
        rows: list[dict[str, Any]] = []
        with open_source(path) as frames:  # a video file: every frame, in order

            def passing() -> Iterator[Frame]:
                for frame in frames:
                    indices.append(frame.index)  # the index of a frame after skipped (corrupt) ones is still its own
                    yield frame

            for result in self.segmenter.track(passing(), persist=False, tracker=self.tracker, stream=True):
                rows.extend(result.to_records(frame=indices.popleft()))
                if len(rows) >= rows_per_table:
                    yield rows
                    rows = []
            if frames.frames_corrupt:
                log.warning("%s: %d frames could not be decoded and were skipped", path, frames.frames_corrupt)
        if rows:
            yield rows


def _batch_images(batch: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, a function that reads it as BGR) for each image of a Ray Data batch (see SegmentImages)."""
    paths = batch.get("path")
    if "bytes" in batch:
        for k, data in enumerate(batch["bytes"]):
            name = f"image {k}" if paths is None else str(paths[k])
            yield name, lambda data=data, name=name: decode_image(data, name)
    elif "image" in batch:
        for k, image in enumerate(batch["image"]):
            name = f"image {k}" if paths is None else str(paths[k])
            yield name, lambda image=image, name=name: to_bgr(_rgb_to_bgr(np.asarray(image)), name)
    elif paths is not None:
        for path in paths:
            yield str(path), lambda path=str(path): read_image(path)
    else:
        raise ConfigError(f"a batch of images needs a `path`, `bytes` or `image` column, got {', '.join(batch)}")


def _rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    """An RGB or RGBA image (as Pillow and ray.data.read_images give) in BGR or BGRA order; grey ones as they are."""
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[..., [2, 1, 0, *range(3, image.shape[2])]]  # a copy, contiguous
    return image


def check_settings(model: str | os.PathLike, threads: int | None = DEFAULT_THREADS,
                   settings: Mapping[str, Any] | None = None, actors: int = DEFAULT_ACTORS,
                   cpus_per_actor: float = DEFAULT_CPUS_PER_ACTOR) -> None:
    """Before anything runs on Ray: the model opens with these settings and the pool's numbers make sense, so that a
    typo is one error here and not one in every actor (where Ray reports it as a UDF failure with the worker's
    traceback). ConfigError and the model's errors."""
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigError(f"actors must be a number of actors (1, 2, ...), got {actors!r}")
    if isinstance(cpus_per_actor, bool) or not isinstance(cpus_per_actor, (int, float)) or not cpus_per_actor > 0:
        raise ConfigError(f"cpus_per_actor must be a positive number of CPUs (0.5, 1, ...), got {cpus_per_actor!r}")
    open_segmenter(model, threads, settings).close()


def check_tracker(tracker: str | os.PathLike | None) -> None:
    """Before anything runs on Ray: the tracker file loads (None: Segmenter.track's default). ConfigError."""
    from ..tracking import DEFAULT_TRACKER, make_tracker

    make_tracker(os.fspath(tracker) if tracker is not None else DEFAULT_TRACKER)


def _map(ds: ray.data.Dataset, udf: type, constructor: dict[str, Any], actors: int, cpus_per_actor: float,
         batch_size: int) -> ray.data.Dataset:
    from ray.data import ActorPoolStrategy

    return ds.map_batches(udf, fn_constructor_kwargs=constructor, compute=ActorPoolStrategy(size=actors),
                          num_cpus=cpus_per_actor, batch_size=batch_size, batch_format="numpy")


def _as_dataset(items: ray.data.Dataset | Iterable[str | os.PathLike], one_per_block: bool) -> ray.data.Dataset:
    import ray.data

    if isinstance(items, ray.data.Dataset):
        return items
    paths = [os.fspath(p) for p in items]
    if not paths:
        raise SourceError("no files to segment")
    blocks = len(paths) if one_per_block else None  # one video per block: the videos spread over the actors
    return ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)


def segment_dataset(ds: ray.data.Dataset | Iterable[str | os.PathLike], model: str | os.PathLike, *,
                    actors: int = DEFAULT_ACTORS, cpus_per_actor: float = DEFAULT_CPUS_PER_ACTOR,
                    threads: int | None = DEFAULT_THREADS, batch_size: int = DEFAULT_BATCH_SIZE,
                    **settings: Any) -> ray.data.Dataset:
    """A lazy Dataset of Results.to_records rows of the images of `ds` (a `path`, `bytes` or `image` column: see
    SegmentImages; or a list of image files), segmented by an actor pool of `actors` actors, each with one
    Segmenter(model, **settings) (conf, iou, classes, ...) whose ONNX Runtime runs `threads` threads on
    `cpus_per_actor` CPUs. An unreadable image gives one row with its `error`. ConfigError for a bad setting and
    the model's own errors are raised here, before anything runs."""
    check_settings(model, threads, settings, actors=actors, cpus_per_actor=cpus_per_actor)
    return _map(_as_dataset(ds, one_per_block=False), SegmentImages,
                {"model": os.fspath(model), "threads": threads, **settings}, actors, cpus_per_actor, batch_size)


def track_videos(ds: ray.data.Dataset | Iterable[str | os.PathLike], model: str | os.PathLike, *,
                 actors: int = DEFAULT_ACTORS, cpus_per_actor: float = DEFAULT_CPUS_PER_ACTOR,
                 threads: int | None = DEFAULT_THREADS, tracker: str | os.PathLike | None = None,
                 **settings: Any) -> ray.data.Dataset:
    """A lazy Dataset of Results.to_records(frame=...) rows, with track ids, of every frame of the videos of `ds` (a
    `path` column, or a list of video files): each video is one task of an actor pool (see TrackVideos), tracked
    with a fresh tracker made from `tracker` (None: Segmenter.track's default). Other arguments as segment_dataset."""
    check_settings(model, threads, settings, actors, cpus_per_actor)
    check_tracker(tracker)
    return _map(_as_dataset(ds, one_per_block=True), TrackVideos,
                {"model": os.fspath(model), "threads": threads,
                 "tracker": None if tracker is None else os.fspath(tracker), **settings}, actors, cpus_per_actor, 1)


@dataclass
class BatchReport:
    """What run_batch did: the output file, the inputs by kind, the object rows written, the inputs skipped (one line
    each, why), and the wall time."""

    out: Path
    images: int = 0
    videos: int = 0
    objects: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self, skipped: bool = True) -> str:
        inputs = self.images + self.videos
        rate = f", {inputs / self.seconds:.1f} inputs/s" if self.seconds > 0 else ""
        lines = [f"{self.images} images, {self.videos} videos: {self.objects} objects in {self.out} "
                 f"({self.seconds:.1f} s{rate})"]
        if self.skipped and skipped:
            lines.append(f"skipped {len(self.skipped)} inputs that could not be read:")
            lines += [f"  {why}" for why in self.skipped]
        return "\n".join(lines)


def list_inputs(source: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(image files, video files) directly inside the folder `source`, sorted; SourceError when it is not a folder
    or holds neither."""
    folder = Path(source)
    if not folder.is_dir():
        raise SourceError(f"--source {folder} is not a folder: give the folder of images and videos to segment")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [str(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [str(p) for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise SourceError(f"no images or videos in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
                          f"{', '.join(sorted(VIDEO_SUFFIXES))})")
    return images, videos


def check_out_folder(out: Path, source: Path, target: Path, protected: Iterable[str | os.PathLike] = ()) -> None:
    """Before anything runs: the output folder `out` is a folder that neither is nor holds the input folder `source`,
    and the output file `target` in it replaces none of `protected` (the model, tracker settings). OutputError
    otherwise."""
    if exists(out) and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder")
    if same_file(out, source) or (exists(out) and out.resolve() in source.resolve().parents):
        raise OutputError(f"--out {out} holds the input folder {source}: give a folder outside it, so that no output "
                          "ever lands among the inputs")
    check_folder_holds_no_inputs(out, [*map(str, protected)], "--out")
    check_not_inputs({f"--out {out} (file {target.name})": target}, [*map(str, protected)])


def write_records(batches: Iterable[pa.Table], path: Path, file_format: str, report: BatchReport) -> Path:
    """Writes the record rows of `batches` to `path` (Parquet or JSON lines) through a temporary file renamed when
    complete; rows with an `error` are left out and listed in report.skipped, objects counted in report.objects.
    OutputError when the file cannot be written (the temporary file is removed)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .common import record_schema

    if file_format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {file_format!r}")
    schema = record_schema().remove(record_schema().get_field_index(ERROR_COLUMN))
    with atomic_file(path) as f, contextlib.ExitStack() as closing:
        writer = closing.enter_context(pq.ParquetWriter(f, schema)) if file_format == "parquet" else None
        for table in batches:
            failed = pc.is_valid(table[ERROR_COLUMN])
            report.skipped.extend(table.filter(failed)[ERROR_COLUMN].to_pylist())
            objects = table.filter(pc.invert(failed)).drop_columns([ERROR_COLUMN])
            report.objects += objects.num_rows
            if writer is not None:
                writer.write_table(objects)
            else:
                f.write(_json_lines(objects.to_pylist(), path))
    return path


def _json_lines(rows: list[dict[str, Any]], path: Path) -> bytes:
    try:
        return "".join(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n" for row in rows).encode()
    except ValueError as e:  # as write_json: a file other tools cannot parse is not an output
        raise OutputError(f"cannot write {path}: {e} (a result holds NaN or infinity)") from None


def run_batch(source: str | os.PathLike, out: str | os.PathLike, model: str | os.PathLike | None = None, *,
              file_format: str = "parquet", actors: int = DEFAULT_ACTORS,
              cpus_per_actor: float = DEFAULT_CPUS_PER_ACTOR, threads: int | None = DEFAULT_THREADS,
              batch_size: int = DEFAULT_BATCH_SIZE, tracker: str | os.PathLike | None = None,
              address: str | None = None, progress: bool = False, **settings: Any) -> BatchReport:
    """Segments the images and tracks the videos directly inside the folder `source` on Ray (the cluster at
    `address`, else the one this process joined, else a local one started and stopped here), and writes every
    object's row into `out`/detections.parquet (or .jsonl with file_format="jsonl"), atomically. Images and
    videos that cannot be read are skipped with a warning and listed in the report; a file that cannot be written
    is an OutputError. `model`: None for the demo model. The rest as segment_dataset and track_videos."""
    import ray
    import ray.data

    started = time.perf_counter()
    if file_format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {file_format!r}")
    if model is None:
        from ..assets import demo_model_path

        model = demo_model_path()
    out, source = Path(out), Path(source)
    images, videos = list_inputs(source)
    target = out / f"{OUTPUT_STEM}{FORMATS[file_format]}"
    check_out_folder(out, source, target, [model, *([tracker] if tracker is not None else [])])
    check_settings(model, threads, settings, actors, cpus_per_actor)  # before a cluster starts
    if videos:
        check_tracker(tracker)
    report = BatchReport(target, len(images), len(videos))
    own_cluster = not ray.is_initialized()
    if own_cluster:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, progress
    constructor = {"model": os.fspath(model), "threads": threads, **settings}
    try:
        parts: list[ray.data.Dataset] = []
        if images:
            parts.append(_map(_as_dataset(images, one_per_block=False), SegmentImages, constructor, actors,
                              cpus_per_actor, batch_size))
        if videos:
            parts.append(_map(_as_dataset(videos, one_per_block=True), TrackVideos,
                              {**constructor, "tracker": None if tracker is None else os.fspath(tracker)},
                              min(actors, len(videos)), cpus_per_actor, 1))
        # one after the other, into one file written here: Ray's own writers write their files in place, where a
        # failed run would leave partial files under the final names
        write_records((t for ds in parts for t in ds.iter_batches(batch_format="pyarrow", batch_size=None)),
                      target, file_format, report)
    finally:
        context.enable_progress_bars = bars
        if own_cluster:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    return report


# `edgeseg batch`: the lead's cli.py adds the parser with add_command(subparsers) and runs run(args)

def add_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `edgeseg batch` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "batch", help="segment a folder of images and videos on a Ray cluster",
        description="Segment every image and track every video directly inside --source on Ray (Ray Data, one "
                    "model per actor, each video tracked whole by one actor), writing one row per object "
                    "(source, frame, box, score, class, track id, RLE mask) into --out/detections.parquet or "
                    ".jsonl. Needs the ray extra: pip install 'edgeseg[ray]'.")
    p.add_argument("--engine", choices=("ray",), default="ray", help="where the work runs (ray)")
    p.add_argument("--source", required=True, type=Path, help="folder of images and videos")
    p.add_argument("--out", required=True, type=Path, help="output folder (never the --source folder or one above it)")
    p.add_argument("--model", help="model file: .onnx (default: the demo model)")
    p.add_argument("--format", dest="file_format", choices=tuple(FORMATS), default="parquet",
                   help="parquet (default) or jsonl")
    p.add_argument("--actors", type=int, default=DEFAULT_ACTORS, help=f"actors, one model each ({DEFAULT_ACTORS})")
    p.add_argument("--cpus-per-actor", type=float, default=DEFAULT_CPUS_PER_ACTOR,
                   help=f"CPUs Ray reserves per actor, fractions allowed ({DEFAULT_CPUS_PER_ACTOR})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"ONNX Runtime threads per actor ({DEFAULT_THREADS})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"images per actor call ({DEFAULT_BATCH_SIZE})")
    p.add_argument("--conf", type=float, help="confidence threshold (0.25; videos: 0.1, as track)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    p.add_argument("--tracker", help="tracker settings for the videos: a YAML file or a shipped name (masktrack.yaml)")
    p.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    """`edgeseg batch`: run_batch with the command's options; prints the report. Exit code 0; errors are raised."""
    if args.engine != "ray":  # argparse's choices keep others out; a caller building args by hand gets a sentence
        raise ConfigError(f"--engine {args.engine}: only ray is available")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("edgeseg batch needs Ray: pip install 'edgeseg[ray]'") from None
    settings = {k: v for k, v in {"conf": args.conf, "iou": args.iou}.items() if v is not None}
    report = run_batch(args.source, args.out, args.model, file_format=args.file_format, actors=args.actors,
                       cpus_per_actor=args.cpus_per_actor, threads=args.threads, batch_size=args.batch_size,
                       tracker=args.tracker, address=args.address, progress=not args.quiet, **settings)
    if report.skipped:  # each was warned about as it happened; listed again at the end, as predict does
        print(f"edgeseg: warning: skipped {len(report.skipped)} of {report.images + report.videos} inputs that could "
              "not be read:", file=sys.stderr)
        for why in report.skipped:
            print(f"  {why}", file=sys.stderr)
    if not args.quiet:
        print(report.format(skipped=False))
    return 0

"""Ray Serve: an HTTP segmentation pool (pip install "edgeseg[serve]"), behind `edgeseg serve`.

    $ edgeseg serve --model yolo11n-seg.onnx --replicas 2 --port 8000
    $ curl --data-binary @bus.jpg localhost:8000/                 # or: curl -F image=@bus.jpg localhost:8000/
    {"source": "upload", "width": 810, "height": 1080, "batch_size": 1, "objects": [{"x1": ..., "mask_counts": ...}]}

Each replica holds one Segmenter; requests that arrive together are run as one batch (@serve.batch: up to
max_batch_size, waiting at most batch_wait_timeout_s for more). See service.SegmentService for the request and
the answer. Ray is imported only when a function here runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .common import open_segmenter

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 opens it to the network
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_S = 0.01
DEFAULT_MAX_BYTES = 20 * 2**20
APP_NAME = "edgeseg"


def build_app(model: str | os.PathLike | None = None, *, replicas: int = 1, cpus_per_replica: float = 1.0,
              threads: int | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
              batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S, max_bytes: int = DEFAULT_MAX_BYTES,
              **settings: Any) -> Any:
    """The Ray Serve application (serve.run(app)): `replicas` replicas of service.SegmentService, each with one
    Segmenter(model, **settings) (None: the demo model) whose ONNX Runtime runs `threads` CPU threads (None: the
    replica's share of this machine's cores) on `cpus_per_replica` CPUs. The model and settings are checked here,
    before any replica starts (ConfigError and the model's errors)."""
    from .service import SegmentService

    if model is None:
        from ..assets import demo_model_path

        model = demo_model_path()
    for name, value, low in (("replicas", replicas, 1), ("max_batch_size", max_batch_size, 1),
                             ("max_bytes", max_bytes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")
    for name, value in (("cpus_per_replica", cpus_per_replica), ("batch_wait_timeout_s", batch_wait_timeout_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // replicas)
    open_segmenter(model, threads, settings).close()
    # a replica takes in enough requests to fill two batches: one running, the next one gathering
    deployment = SegmentService.options(num_replicas=replicas, max_ongoing_requests=2 * max_batch_size,
                                        ray_actor_options={"num_cpus": cpus_per_replica})
    return deployment.bind(os.fspath(model), settings, threads, max_batch_size, float(batch_wait_timeout_s),
                           max_bytes)


def start(model: str | os.PathLike | None = None, *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST,
          address: str | None = None, **options: Any) -> str:
    """Starts the application of build_app(model, **options) on Ray Serve (the cluster at `address`, else the one
    this process joined, else a local one) at http://host:port/ and returns that URL once every replica is up.
    serve.shutdown() stops it."""
    import ray
    from ray import serve

    app = build_app(model, **options)  # checked before a cluster starts
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}/"


def add_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `edgeseg serve` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "serve", help="serve segmentation over HTTP with Ray Serve",
        description="An HTTP segmentation pool on Ray Serve: POST a JPEG or PNG (the body, or a multipart file) to "
                    "http://HOST:PORT/ and get JSON, one row per object (box, score, class, RLE mask; ?polygons=1: "
                    "outlines). Concurrent requests are batched. Needs the serve extra: pip install 'edgeseg[serve]'.")
    p.add_argument("--model", help="model file: .onnx (default: the demo model)")
    p.add_argument("--replicas", type=int, default=1, help="replicas, one model each (1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port ({DEFAULT_PORT})")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on ({DEFAULT_HOST}: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"most requests run together ({DEFAULT_MAX_BATCH_SIZE})")
    p.add_argument("--batch-wait-ms", type=float, default=DEFAULT_BATCH_WAIT_S * 1e3,
                   help=f"how long a batch waits for more requests ({DEFAULT_BATCH_WAIT_S * 1e3:g} ms)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20,
                   help=f"largest upload accepted ({DEFAULT_MAX_BYTES / 2**20:g} MiB)")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs Ray reserves per replica (1)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per replica (cores / replicas)")
    p.add_argument("--conf", type=float, help="confidence threshold (0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    p.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    p.add_argument("--quiet", action="store_true", help="no startup line")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    """`edgeseg serve`: starts the pool and serves until interrupted (Ctrl-C or SIGTERM), then stops it."""
    try:
        from ray import serve
    except ImportError:
        raise ConfigError("edgeseg serve needs Ray Serve: pip install 'edgeseg[serve]'") from None
    if args.max_upload_mb <= 0 or args.batch_wait_ms < 0:
        raise ConfigError("--max-upload-mb must be positive and --batch-wait-ms at least 0")
    settings = {k: v for k, v in {"conf": args.conf, "iou": args.iou}.items() if v is not None}
    url = start(Path(args.model) if args.model else None, port=args.port, host=args.host, address=args.address,
                replicas=args.replicas, cpus_per_replica=args.cpus_per_replica, threads=args.threads,
                max_batch_size=args.max_batch_size, batch_wait_timeout_s=args.batch_wait_ms / 1e3,
                max_bytes=int(args.max_upload_mb * 2**20), **settings)
    if not args.quiet:
        print(f"serving {args.model or 'the demo model'} at {url} with {args.replicas} replica(s); Ctrl-C stops",
              flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C and SIGTERM (the CLI raises KeyboardInterrupt for both) stop the replicas
        serve.shutdown()

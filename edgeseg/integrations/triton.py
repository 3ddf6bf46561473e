"""Triton Inference Server: edgeseg's whole pipeline served with PyTriton, and a client that gives back Results.

    $ pip install "edgeseg[triton]"            # in an environment of its own: PyTriton 0.7 needs NumPy < 2
    $ edgeseg serve-triton --model yolo11n-seg.onnx --max-batch-size 8
    >>> from edgeseg.integrations.triton import TritonClient
    >>> with TritonClient("localhost:8001") as client:            # gRPC; "http://localhost:8000" for HTTP
    ...     r = client.infer(["bus.jpg"])[0]                      # edgeseg Results: r.boxes.xyxy, r.masks.data
    ...     rows = client.records(["bus.jpg"])[0]["objects"]      # the JSON answer: Results.to_records rows

`serve_triton` binds one Segmenter to PyTriton's bundled tritonserver as two models that batch requests dynamically:
`edgeseg` takes IMAGE, the bytes of a JPEG or PNG file (TYPE_STRING, [1] per request), and `edgeseg_pixels` a
decoded (H, W, 3) uint8 BGR array; both answer DETECTIONS, one JSON object per image: {"source", "width", "height",
"batch_size", "objects"} (batch_size: the requests that ran together). A repository written by `edgeseg export M.onnx
--triton REPO` (for a Triton container) answers the same IMAGE -> DETECTIONS under the same name, so TritonClient
talks to either.

PyTriton and tritonclient are imported only when a function here runs; `import edgeseg` never imports them. Measured
with nvidia-pytriton 0.7.0 (tritonserver 2.51, Python backend only): it needs NumPy < 2 (with NumPy 2 it answers
zeroed tensors without a word; serve_triton refuses it) and Python <= 3.12, and its Python backend stub needs the
interpreter's libdir on LD_LIBRARY_PATH, which serve_triton adds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SourceError
from ..inputs.frames import Frame
from ..results import Boxes, Masks, Results
from .common import decode_image, open_segmenter
from .triton_models import DETECTIONS, IMAGE, SOURCE_NAME

log = logging.getLogger(__name__)

DEFAULT_NAME = "edgeseg"
PIXELS_SUFFIX = "_pixels"
DEFAULT_HOST = "127.0.0.1"  # this machine only; --host 0.0.0.0 opens it to the network
DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT, DEFAULT_METRICS_PORT = 8000, 8001, 8002
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_QUEUE_DELAY_US = 2000
MAX_PYTHON = (3, 12)  # the newest Python nvidia-pytriton 0.7 ships a backend stub for
ImageInput = str | os.PathLike | bytes | np.ndarray


# ---- the server ----------------------------------------------------------------------------------------------------


def check_pytriton_environment() -> None:
    """ConfigError unless this process can run PyTriton correctly: NumPy < 2 (PyTriton 0.7 returns zeroed tensors
    under NumPy 2) and Python <= 3.12."""
    if int(np.__version__.split(".")[0]) >= 2:
        raise ConfigError(f"PyTriton 0.7 needs NumPy < 2 (this environment has {np.__version__}; under NumPy 2 it "
                          "answers zeroed tensors): serve from an environment of its own, e.g. "
                          "python -m venv tv && tv/bin/pip install edgeseg 'numpy<2' 'opencv-python-headless<4.12' "
                          "nvidia-pytriton")
    if sys.version_info[:2] > MAX_PYTHON:
        raise ConfigError(f"PyTriton 0.7 runs on Python up to {MAX_PYTHON[0]}.{MAX_PYTHON[1]}, this is "
                          f"{sys.version_info[0]}.{sys.version_info[1]}")
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise ConfigError("serving on Triton needs PyTriton: pip install 'edgeseg[triton]' (NumPy < 2)") from None


def python_libdir_on_library_path(environ: dict[str, str] | None = None) -> str:
    """Puts this interpreter's libdir on LD_LIBRARY_PATH (of `environ`, default os.environ) unless it is there:
    PyTriton's Python backend stub otherwise loads another libpython. Returns the new value."""
    environ = os.environ if environ is None else environ
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    parts = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if libdir and libdir not in parts:
        parts.insert(0, libdir)
    environ["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
    return environ["LD_LIBRARY_PATH"]


class SegmentBatches:
    """The inference callable of both bound models: a list of PyTriton requests -> one DETECTIONS answer each. The
    images of all requests run through the Segmenter together (one predict call, in network batches of its
    batch_size); an image that cannot be decoded gets {"error": ...} as its answer, the others are served."""

    def __init__(self, segmenter: Any, encoded: bool):
        self.segmenter = segmenter
        self.encoded = encoded
        self.lock = threading.Lock()  # the two models share one Segmenter, whose input buffer is reused
        self.calls = 0  # executions, for tests and logs

    def __call__(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        counts, frames, failed = [], [], {}
        for r, request in enumerate(requests):
            items = self._images(request[IMAGE], r)
            counts.append(len(items))
            for k, item in enumerate(items):
                if isinstance(item, str):
                    failed[(r, k)] = item
                else:
                    frames.append(Frame(item, len(frames), SOURCE_NAME, path=SOURCE_NAME))
        with self.lock:
            self.calls += 1
            results = iter(self.segmenter.predict(frames) if frames else [])
        total = sum(counts)
        answers = []
        for r, count in enumerate(counts):
            rows = []
            for k in range(count):
                if (r, k) in failed:
                    rows.append(json.dumps({"source": SOURCE_NAME, "error": failed[(r, k)]}).encode())
                else:
                    rows.append(_answer(next(results), total))
            answers.append({DETECTIONS: np.array(rows, dtype=np.object_).reshape(count, 1)})
        return answers

    def _images(self, data: np.ndarray, r: int) -> list[np.ndarray | str]:
        """A request's images (decoded BGR arrays), or for each one that is not an image, why."""
        out: list[np.ndarray | str] = []
        if self.encoded:
            for k, item in enumerate(data.reshape(-1)):
                try:
                    out.append(decode_image(item if isinstance(item, bytes) else bytes(item), f"image {k}"))
                except SourceError as e:
                    out.append(str(e))
            return out
        arrays = data if data.ndim == 4 else data[None]
        for image in arrays:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
                out.append(f"request {r}: send (H, W, 3) uint8 BGR pixels, got {image.shape} {image.dtype}")
            else:
                out.append(np.ascontiguousarray(image))
        return out


def _answer(result: Results, batch_size: int) -> bytes:
    from .triton_models import answer

    return answer(result, batch_size)


def start_triton(model: str | os.PathLike | None = None, *, name: str = DEFAULT_NAME,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
                 host: str = DEFAULT_HOST, http_port: int = DEFAULT_HTTP_PORT, grpc_port: int = DEFAULT_GRPC_PORT,
                 metrics_port: int = DEFAULT_METRICS_PORT, threads: int | None = None, **settings: Any) -> Any:
    """Starts PyTriton's tritonserver with `name` (IMAGE: encoded bytes) and `name`_pixels (IMAGE: (H, W, 3) uint8
    BGR) bound to one Segmenter(model, **settings) (None: the demo model) whose ONNX Runtime runs `threads` CPU
    threads; requests are batched dynamically, up to max_batch_size, waiting at most queue_delay_us for more.
    Returns the running pytriton.triton.Triton once it is ready; its stop() ends it.

    Raises:
        ConfigError: a bad setting, or an environment PyTriton cannot run in (see check_pytriton_environment).
        ModelNotFoundError, ModelFormatError, NotSegmentationModelError: as Segmenter(model).
    """
    for what, value, low in (("max_batch_size", max_batch_size, 1), ("queue_delay_us", queue_delay_us, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{what} must be a whole number of at least {low}, got {value!r}")
    check_pytriton_environment()
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    if model is None:
        from ..assets import demo_model_path

        model = demo_model_path()
    settings.setdefault("batch", max_batch_size)  # a dynamic-batch network runs each gathered batch at once
    segmenter = open_segmenter(model, threads, settings, warmup=True)
    python_libdir_on_library_path()
    config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port,
                          metrics_address=host, metrics_port=metrics_port)
    triton = Triton(config=config)
    batching = ModelConfig(max_batch_size=max_batch_size,
                           batcher=DynamicBatcher(max_queue_delay_microseconds=queue_delay_us))
    out = [Tensor(name=DETECTIONS, dtype=bytes, shape=(1,))]
    try:
        triton.bind(model_name=name, infer_func=SegmentBatches(segmenter, encoded=True),
                    inputs=[Tensor(name=IMAGE, dtype=bytes, shape=(1,))], outputs=out, config=batching)
        triton.bind(model_name=name + PIXELS_SUFFIX, infer_func=SegmentBatches(segmenter, encoded=False),
                    inputs=[Tensor(name=IMAGE, dtype=np.uint8, shape=(-1, -1, 3))], outputs=out, config=batching)
        triton.run()
    except BaseException:
        triton.stop()
        segmenter.close()
        raise
    return triton


def serve_triton(model: str | os.PathLike | None = None, **options: Any) -> None:
    """start_triton(model, **options), then serves until interrupted (Ctrl-C or SIGTERM), then stops."""
    triton = start_triton(model, **options)
    try:
        while True:
            time.sleep(3600)
    finally:
        triton.stop()


# ---- the client ----------------------------------------------------------------------------------------------------


class TritonClient:
    """Sends images to a Triton server that answers IMAGE -> DETECTIONS (serve_triton, or a repository written by
    `edgeseg export --triton`) and gives back the answers (records) or edgeseg Results (infer).

    url: "host:port" or "grpc://host:port" for gRPC (the default), "http://host:port" for HTTP. Each image is its own
    request, sent concurrently (up to `concurrency` at a time) so that the server batches them. An image is a file
    path (its bytes are sent as they are), encoded bytes, or a (H, W, 3) uint8 BGR array (sent as PNG, lossless).
    Needs tritonclient: pip install 'tritonclient[grpc]' (or [http]).
    """

    def __init__(self, url: str = f"localhost:{DEFAULT_GRPC_PORT}", model: str = DEFAULT_NAME, *,
                 concurrency: int = 8, timeout_s: float = 60.0):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
        scheme, _, rest = url.rpartition("://")
        self.protocol = scheme.lower() or "grpc"
        if self.protocol not in ("grpc", "http"):
            raise ConfigError(f"url must be grpc://host:port or http://host:port, got {url!r}")
        self.url, self.model, self.concurrency, self.timeout_s = rest, model, concurrency, timeout_s
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except ImportError as e:
            raise ConfigError(f"TritonClient needs tritonclient: pip install 'tritonclient[{self.protocol}]' "
                              f"({e})") from None
        self._tc = tc
        self._client = (tc.InferenceServerClient(rest) if self.protocol == "grpc" else
                        tc.InferenceServerClient(rest, concurrency=concurrency, network_timeout=timeout_s))
        self._names: dict[int, str] | None = None

    def records(self, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
        """The server's answer for each image, in order: {"source", "width", "height", "batch_size", "objects"}
        (objects: Results.to_records rows), or {"source", "error"} for an image the server did not answer (not an
        image, or the request failed: the error says why)."""
        payloads = [_encoded(image) for image in _as_list(images)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(payloads)))) as pool:
            return list(pool.map(self._infer_one, payloads))

    def infer(self, images: Sequence[ImageInput]) -> list[Results]:
        """edgeseg Results for each image, in order, rebuilt from the answers: boxes, scores, classes and masks as
        the server's Segmenter gave them (float32 boxes and scores exactly; masks from their RLE), with the image as
        orig_img. SourceError for an image the server did not answer."""
        images = _as_list(images)
        answers = self.records(images)
        names = self.names()
        out = []
        for image, reply in zip(images, answers, strict=True):
            path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else SOURCE_NAME
            if "error" in reply:
                raise SourceError(f"Triton at {self.url} did not segment {path}: {reply['error']}")
            out.append(results_from_answer(reply, _pixels(image, path), names, path))
        return out

    def names(self) -> dict[int, str]:
        """The model's class names, as the ensemble's config says (a repository from edgeseg export --triton);
        {} when the server's model does not say (serve_triton's: Results then name the classes found)."""
        if self._names is None:
            try:
                config = self._client.get_model_config(self.model)
                config = config.config if self.protocol == "grpc" else config
                params = config.parameters if self.protocol == "grpc" else config.get("parameters", {})
                value = params["edgeseg"].string_value if self.protocol == "grpc" else \
                    params["edgeseg"]["string_value"]
                self._names = {int(k): v for k, v in json.loads(value)["names"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                self._names = {}
        return self._names

    def _infer_one(self, payload: bytes) -> dict[str, Any]:
        tc = self._tc
        tensor = tc.InferInput(IMAGE, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
        wanted = [tc.InferRequestedOutput(DETECTIONS)]
        from tritonclient.utils import InferenceServerException

        try:
            if self.protocol == "grpc":
                reply = self._client.infer(self.model, [tensor], outputs=wanted, client_timeout=self.timeout_s)
            else:
                reply = self._client.infer(self.model, [tensor], outputs=wanted)
        except InferenceServerException as e:  # the request's own error (a repository's stages answer per request)
            return {"source": SOURCE_NAME, "error": f"{e.message() or e}".strip()}
        return json.loads(reply.as_numpy(DETECTIONS).reshape(-1)[0])

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def infer_remote(images: Sequence[ImageInput], url: str = f"localhost:{DEFAULT_GRPC_PORT}",
                 model: str = DEFAULT_NAME, **options: Any) -> list[Results]:
    """TritonClient(url, model, **options).infer(images), the client closed after."""
    with TritonClient(url, model, **options) as client:
        return client.infer(images)


def _as_list(images: Any) -> list[ImageInput]:
    if isinstance(images, (str, os.PathLike, bytes, np.ndarray)):
        return [images]
    return list(images)


def _encoded(image: ImageInput) -> bytes:
    """What IMAGE carries for one image: a file's bytes as they are, bytes as given, an array as PNG."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, (str, os.PathLike)):
        try:
            return Path(image).read_bytes()
        except OSError as e:
            raise SourceError(f"cannot read {image}: {e.strerror or e}") from None
    if isinstance(image, np.ndarray):
        import cv2

        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise SourceError(f"cannot encode an array of shape {image.shape} {image.dtype} as PNG")
        return data.tobytes()
    raise ConfigError(f"an image is a file path, encoded bytes or a uint8 array, got {type(image).__name__}")


def _pixels(image: ImageInput, name: str) -> np.ndarray:
    """The image as the server decoded it, for Results.orig_img."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, (str, os.PathLike)):
        from ..inputs.images import read_image

        return read_image(os.fspath(image))
    return decode_image(image, name)


def results_from_answer(reply: dict[str, Any], image: np.ndarray, names: dict[int, str] | None = None,
                        path: str | None = None) -> Results:
    """Results of one DETECTIONS answer: boxes and scores back to float32 (exactly: they left as float32), classes,
    and each mask decoded from its RLE into the crop of its box's pixels, as the Segmenter stores it. `names`: the
    model's class names (None or {}: those of the classes in the answer)."""
    from ..inputs.letterbox import box_pixels

    h, w = int(reply["height"]), int(reply["width"])
    if image.shape[:2] != (h, w):
        raise ConfigError(f"the answer is for a {w}x{h} image, the image given is {image.shape[1]}x{image.shape[0]}")
    rows = reply["objects"]
    xyxy = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in rows], np.float32).reshape(-1, 4)
    conf = np.array([r["score"] for r in rows], np.float32)
    cls = np.array([r["class_id"] for r in rows], np.int64)
    bounds = box_pixels(xyxy, (h, w))
    crops = []
    for r, (x0, y0, x1, y1) in zip(rows, bounds.tolist(), strict=True):
        full = rle_decode(r["mask_counts"], (h, w))
        crops.append(np.ascontiguousarray(full[y0:y1, x0:x1]))
    names = dict(names or {})
    for r in rows:
        names.setdefault(int(r["class_id"]), r["class_name"])
    shape = (h, w)
    return Results(image, path if path is not None else reply.get("source"), names, Boxes(xyxy, conf, cls, shape),
                   Masks(tuple(crops), bounds[:, :2].copy(), shape))


def rle_decode(counts: str, shape: tuple[int, int]) -> np.ndarray:
    """A COCO compressed RLE string (pycocotools' form, as Results.to_records writes it) -> (h, w) uint8 0/1."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    h, w = shape
    if sum(runs) != h * w or min(runs, default=0) < 0:
        raise ConfigError(f"mask RLE does not cover a {w}x{h} image")
    flat = np.repeat((np.arange(len(runs)) % 2).astype(np.uint8), runs)
    return flat.reshape(w, h).T  # COCO's RLE runs down the columns


# ---- the command line (edgeseg serve-triton) -------------------------------------------------------------------------


def add_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `edgeseg serve-triton` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "serve-triton", help="serve segmentation on Triton Inference Server (PyTriton)",
        description="Serves edgeseg's whole pipeline on PyTriton's Triton Inference Server: model NAME takes IMAGE "
                    "(the bytes of a JPEG or PNG) and NAME_pixels a (H, W, 3) uint8 BGR array; both answer "
                    "DETECTIONS, JSON with one row per object (box, score, class, RLE mask). Concurrent requests are "
                    "batched. Needs the triton extra in an environment with NumPy < 2: pip install 'edgeseg[triton]'.")
    p.add_argument("--model", help="model file: .onnx or .engine (default: the demo model)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"Triton model name ({DEFAULT_NAME})")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on ({DEFAULT_HOST}: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help=f"HTTP port ({DEFAULT_HTTP_PORT})")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help=f"gRPC port ({DEFAULT_GRPC_PORT})")
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                   help=f"metrics port ({DEFAULT_METRICS_PORT})")
    p.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"most requests run together ({DEFAULT_MAX_BATCH_SIZE})")
    p.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                   help=f"how long a batch waits for more requests ({DEFAULT_QUEUE_DELAY_US} us)")
    p.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (its default)")
    p.add_argument("--conf", type=float, help="confidence threshold (0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (0.7)")
    p.add_argument("--quiet", action="store_true", help="no startup line")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    """`edgeseg serve-triton`: starts the server and serves until interrupted (Ctrl-C or SIGTERM), then stops it."""
    settings = {k: v for k, v in {"conf": args.conf, "iou": args.iou}.items() if v is not None}
    triton = start_triton(Path(args.model) if args.model else None, name=args.name, host=args.host,
                          http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                          max_batch_size=args.max_batch_size, queue_delay_us=args.queue_delay_us,
                          threads=args.threads, **settings)
    if not args.quiet:
        print(f"serving {args.model or 'the demo model'} as '{args.name}' on Triton: grpc://{args.host}:"
              f"{args.grpc_port}, http://{args.host}:{args.http_port}; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C and SIGTERM (the CLI raises KeyboardInterrupt for both) stop the server
        triton.stop()
    return 0


__all__ = ["TritonClient", "add_command", "infer_remote", "results_from_answer", "rle_decode", "run",
           "serve_triton", "start_triton"]

"""edgeseg's stages as Triton Python-backend models: what the model.py files of a repository written by `edgeseg export
M.onnx --triton REPO` (edgeseg_export.triton_repo) load. Triton's Python backend imports them; `pip install edgeseg`
in the Python backend's environment is all they need (no PyTriton, no tritonclient).

    PreprocessModel   IMAGE (encoded JPEG/PNG bytes, TYPE_STRING [1]) -> the network's input (3, H, W) and
                      LETTERBOX (8,) int64: src_h, src_w, dst_h, dst_w, resized_h, resized_w, top, left
    PostprocessModel  the network's two outputs + LETTERBOX -> DETECTIONS: JSON bytes
                      {"source", "width", "height", "batch_size", "objects": [Results.to_records rows]}

Each reads what it needs to know about the network (input size, head kind, classes, settings) from the `edgeseg`
parameter of its config.pbtxt, a JSON object the repository writer took from the model file. A request that cannot
be served (an image that is not one) gets its own error; the other requests of the batch are answered.
`triton_python_backend_utils` exists only inside Triton's Python backend: it is imported when Triton calls in.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from ..config import PredictConfig
from ..errors import ConfigError, EdgesegError
from ..inputs.letterbox import Letterbox
from ..inputs.preprocess import Preprocessor
from ..postprocess.cpu import decode_end2end, decode_raw, to_input_frame, to_source
from ..results import Results
from .common import decode_image

log = logging.getLogger(__name__)

PARAMETER = "edgeseg"  # the config.pbtxt parameter that holds the stage's settings (JSON)
FORMAT = "edgeseg-triton/1"
IMAGE, LETTERBOX, DETECTIONS = "IMAGE", "LETTERBOX", "DETECTIONS"
SOURCE_NAME = "upload"  # Results.path and the records' source of an image sent over the network, as `edgeseg serve`
LETTERBOX_FIELDS = 8

# the settings of PredictConfig that post-processing uses (the rest are the network's: providers, batch, device)
POSTPROCESS_SETTINGS = ("conf", "iou", "max_det", "classes", "agnostic_nms", "multi_label", "retina_masks")


def letterbox_row(letterbox: Letterbox) -> list[int]:
    """A Letterbox as the LETTERBOX tensor's 8 integers."""
    return [*letterbox.src_shape, *letterbox.dst_shape, *letterbox.resized, letterbox.top, letterbox.left]


def letterbox_from_row(row: np.ndarray) -> Letterbox:
    """The LETTERBOX tensor's 8 integers as a Letterbox."""
    v = [int(x) for x in np.asarray(row).reshape(-1)]
    if len(v) != LETTERBOX_FIELDS:
        raise ConfigError(f"LETTERBOX must hold {LETTERBOX_FIELDS} integers, got {len(v)}")
    return Letterbox((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), v[6], v[7])


def answer(result: Results, batch_size: int) -> bytes:
    """One image's answer: JSON {"source", "width", "height", "batch_size", "objects"} (UTF-8 bytes); objects are
    Results.to_records rows (box, score, class, RLE mask at source resolution). batch_size: the images that ran
    together in this stage's batch."""
    h, w = result.orig_shape
    return json.dumps({"source": result.path, "width": int(w), "height": int(h), "batch_size": int(batch_size),
                       "objects": result.to_records()}, separators=(",", ":")).encode()


def stage_settings(args: dict[str, Any]) -> dict[str, Any]:
    """The `edgeseg` parameter of the model's config (Triton passes the config as JSON in args["model_config"])."""
    config = json.loads(args["model_config"])
    try:
        settings = json.loads(config["parameters"][PARAMETER]["string_value"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ConfigError(f"model {config.get('name')!r}: config.pbtxt lacks a valid {PARAMETER!r} parameter "
                          f"({type(e).__name__}: {e}); write the repository again (edgeseg export --triton)") from None
    if settings.get("format") != FORMAT:
        raise ConfigError(f"model {config.get('name')!r}: parameter {PARAMETER!r} is not {FORMAT}")
    from .. import __version__

    if settings.get("edgeseg_version") != __version__:
        log.warning("this repository was written by edgeseg %s and runs on edgeseg %s", settings.get("edgeseg_version"),
                    __version__)
    return settings


class _Stage:
    """What both stages share: the config's settings, and answering each request (or its error)."""

    def initialize(self, args: dict[str, Any]) -> None:
        self.settings = stage_settings(args)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                tensors = self.run(request, pb_utils, len(requests))
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(name, value) for name, value in tensors.items()]))
            except EdgesegError as e:  # this request's fault: its own error, the batch goes on
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
            except Exception as e:
                log.exception("edgeseg %s failed", type(self).__name__)
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"{type(e).__name__}: {e}".splitlines()[0])))
        return responses

    def run(self, request: Any, pb_utils: Any, batch_size: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def finalize(self) -> None:
        pass


class PreprocessModel(_Stage):
    """IMAGE bytes -> the network's input and each image's LETTERBOX, as Segmenter.preprocess gives them."""

    def initialize(self, args: dict[str, Any]) -> None:
        super().initialize(args)
        s = self.settings
        self.input_name = s["input_name"]
        # a request's images are letterboxed together, as the Segmenter does a batch (a dynamic-size model: to the
        # smallest rectangle when they share a shape); the buffer is copied out before the next request
        self.preprocessor = Preprocessor(tuple(s["imgsz"]), np.dtype(s["input_dtype"]), s["stride"],
                                         dynamic=s["dynamic_hw"])

    def run(self, request: Any, pb_utils: Any, batch_size: int) -> dict[str, np.ndarray]:
        data = pb_utils.get_input_tensor_by_name(request, IMAGE).as_numpy()
        images = [decode_image(item if isinstance(item, bytes) else bytes(item), f"image {k} of the request")
                  for k, item in enumerate(data.reshape(-1))]
        if not images:
            raise ConfigError("the request holds no image")
        tensor, letterboxes = self.preprocessor(images)
        return {self.input_name: tensor[: len(images)].copy(),
                LETTERBOX: np.array([letterbox_row(lb) for lb in letterboxes], np.int64)}


class PostprocessModel(_Stage):
    """The network's outputs + LETTERBOX -> DETECTIONS (JSON bytes per image), as Segmenter.postprocess computes them
    on the CPU: decode, NMS, masks inside each box."""

    def initialize(self, args: dict[str, Any]) -> None:
        super().initialize(args)
        s = self.settings
        self.config = PredictConfig(**{k: tuple(v) if k == "classes" and v is not None else v
                                       for k, v in s["predict"].items()})
        self.names = {int(k): v for k, v in s["names"].items()}
        self.end2end = bool(s["end2end"])
        self.num_classes = int(s["num_classes"])
        self.det_name, self.protos_name = s["det_input"], s["protos_input"]

    def run(self, request: Any, pb_utils: Any, batch_size: int) -> dict[str, np.ndarray]:
        det = pb_utils.get_input_tensor_by_name(request, self.det_name).as_numpy()
        protos = pb_utils.get_input_tensor_by_name(request, self.protos_name).as_numpy()
        rows = pb_utils.get_input_tensor_by_name(request, LETTERBOX).as_numpy()
        rows = rows.reshape(-1, LETTERBOX_FIELDS)
        answers = [answer(self.result(det[k], protos[k], letterbox_from_row(rows[k])), batch_size)
                   for k in range(len(rows))]
        return {DETECTIONS: np.array(answers, dtype=np.object_).reshape(len(answers), 1)}

    def result(self, det: np.ndarray, protos: np.ndarray, letterbox: Letterbox) -> Results:
        """One image's Results (its pixels are not here: orig_img is a blank of its shape, which the records do
        not read)."""
        cfg = self.config
        pred = det.astype(np.float32, copy=False)
        found = decode_end2end(pred, cfg) if self.end2end else decode_raw(pred, self.num_classes, cfg)
        place = to_source if cfg.retina_masks else to_input_frame
        boxes, masks = place(found, protos.astype(np.float32, copy=False), letterbox)
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (*letterbox.src_shape, 3))
        return Results(blank, SOURCE_NAME, self.names, boxes, masks)

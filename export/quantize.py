"""INT8 post-training quantization of a YOLO-seg ONNX model for CPUs (x86 and ARM), with ONNX Runtime's tools.

    quantize_int8("yolo11n-seg.onnx", "calib_images/", "yolo11n-seg-int8.onnx")

The result is a QDQ model (QuantizeLinear / DequantizeLinear pairs around int8 weights and uint8 activations),
which ONNX Runtime's CPU provider fuses into int8 kernels (QLinearConv and friends). Calibration runs the float
model on images letterboxed exactly as edgeseg's runtime letterboxes them, so the activation ranges are those the
model will see.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgeseg.errors import EdgesegError, ExportError, ModelFormatError, ModelNotFoundError, SourceError
from edgeseg.inputs.frames import ImageSource
from edgeseg.inputs.images import IMAGE_SUFFIXES
from edgeseg.inputs.preprocess import Preprocessor
from edgeseg.model.metadata import ModelMetadata
from edgeseg.outputs.files import write_bytes

from .to_onnx import check_writable

log = logging.getLogger(__name__)

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
# Histogram calibration (entropy, percentile) keeps every activation of the images of one collection round in
# memory, about 150 MB per 320x320 image for YOLO11n-seg: calibrate in rounds of this many images.
HISTOGRAM_ROUND = 4
# the metadata key that records how a model was quantized (Ultralytics' parser ignores keys it does not know)
QUANTIZATION_KEY = "quantization"
# a node in layer N of an Ultralytics model: "/model.N/rest" (a wrapper may put more scopes in front)
_LAYER = re.compile(r"(?:^|/)model\.(\d+)/(.*)$")


def quantize_int8(
    model: str | Path,
    calib_dir: str | Path,
    out: str | Path,
    *,
    calib_images: int = 200,
    per_channel: bool = True,
    method: str = "minmax",
) -> Path:
    """Writes a statically quantized copy of `model` (QDQ: int8 weights, uint8 activations) to `out`.

    model: a float32 YOLO-seg ONNX model as Ultralytics exports it. calib_dir: a folder of images (searched
    recursively); `calib_images` of them, spread evenly over the sorted list, calibrate the activation ranges.
    per_channel: one weight scale per output channel (on the test model slightly more accurate than one per
    tensor, and no slower). method: activation ranges from "minmax", "entropy" or "percentile" (99.999th).
    The head's box decoding and output concatenation stay float (see float_nodes); Ultralytics' metadata is kept.
    Returns `out`, written atomically (a temporary file beside it, then a rename).
    """
    model, calib_dir, out = Path(model), Path(calib_dir), Path(out)
    if method not in METHODS:
        raise ExportError(f"unknown calibration method {method!r}: use one of {', '.join(METHODS)}")
    if not isinstance(calib_images, int) or isinstance(calib_images, bool) or calib_images < 1:
        raise ExportError(f"calib_images must be a positive integer, got {calib_images!r}")
    proto = _load_float_model(model)
    files = calibration_files(calib_dir, calib_images)
    check_writable(out)  # before minutes of calibration, not after

    with tempfile.TemporaryDirectory(prefix="edgeseg-quant.") as work:
        source, prepared, quantized_path = (Path(work) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(proto, source)  # one self-contained file, whatever external data the input had
        try:
            # ONNX shape inference and ONNX Runtime's graph optimisations, as ONNX Runtime asks for before quantizing.
            # Symbolic shape inference is skipped: it is for transformers, and it fails on NMS-in-graph exports.
            quant_pre_process(source, prepared, skip_symbolic_shape=True)
            prepared_proto = onnx.load(prepared)
            exclude = float_nodes(prepared_proto)  # after the optimisations, which may rename nodes
            log.info("quantizing %s with %d images of %s (%s, %s weights); %d head nodes stay float", model.name,
                     len(files), calib_dir, method, "per-channel" if per_channel else "per-tensor", len(exclude))
            quantize_static(
                prepared, quantized_path, LetterboxReader(files, prepared_proto),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                # uint8 activations, int8 weights (U8S8). With int8 activations ONNX Runtime 1.32's CPU provider
                # fused only 12 of the 100 Conv nodes on x86 (the others ran in float between DQ and Q nodes: 1.7x
                # slower than FP32); with uint8 it fuses all of them into QLinearConv, and SiLU into QLinearSigmoid
                # and QLinearMul: 1.8-2x faster than FP32. (ARM CPUs were not measured.)
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=METHODS[method],
                # rounds of images: each round's activations are reduced (to a min/max or a histogram) and dropped
                extra_options={"CalibStridedMinMax": _round_size(len(files), HISTOGRAM_ROUND)
                               if method != "minmax" else len(files)},
            )
        except EdgesegError:
            raise  # an unreadable calibration image (SourceError), a graph without a YOLO head: they say so
        except Exception as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"ONNX Runtime could not quantize {model}: {detail}") from e
        quantized = onnx.load(quantized_path)
    onnx.helper.set_model_props(quantized, {
        **{p.key: p.value for p in proto.metadata_props},  # names, imgsz, stride, task: what the runtime reads
        QUANTIZATION_KEY: f"int8 QDQ (uint8 activations, int8 {'per-channel' if per_channel else 'per-tensor'} "
                          f"weights), {method} calibration on {len(files)} images, {len(exclude)} head nodes float",
    })
    return write_bytes(out, quantized.SerializeToString())


class LetterboxReader(CalibrationDataReader):
    """Calibration batches for quantize_static: {input name: (B, 3, H, W) float32}, letterboxed as edgeseg does.

    B is the model's fixed batch size (short batches padded with zeros, as at run time) or 1.
    """

    def __init__(self, files: Sequence[Path], model: onnx.ModelProto):
        graph_input = model.graph.input[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
        meta = ModelMetadata.from_strings({p.key: p.value for p in model.metadata_props})
        imgsz = tuple(dims[2:]) if None not in dims[2:] else meta.imgsz
        if imgsz is None:
            raise ExportError(f"{graph_input.name} has a dynamic size and the model's metadata has no imgsz: "
                              "export it with a fixed imgsz to quantize it")
        self.name = graph_input.name
        self.files = list(files)
        self.batch = dims[0] or 1
        # letterboxed to the full imgsz (not Ultralytics' stride-multiple shortcut for dynamic models): what a fixed-
        # size export of this model sees, and one input shape for every calibration run
        self._pre = Preprocessor(imgsz, np.float32, meta.stride or 32, dynamic=False, batch=dims[0])
        self._batches = self._iterate(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restricts the next pass to files[start_index:end_index] (quantize_static calibrates in such rounds)."""
        self._batches = self._iterate(self.files[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def _iterate(self, files: list[Path]) -> Iterator[dict[str, np.ndarray]]:
        images = (frame.image for frame in ImageSource([str(f) for f in files], strict=True))
        while chunk := list(islice(images, self.batch)):
            tensor, _ = self._pre(chunk)
            yield {self.name: tensor.copy()}  # the Preprocessor reuses its buffer on the next call


def calibration_files(calib_dir: str | Path, count: int) -> list[Path]:
    """`count` image files of calib_dir and its subfolders, spread evenly over their sorted list (all if fewer)."""
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        what = "is not a folder" if calib_dir.exists() else "does not exist"
        raise SourceError(f"calibration folder {calib_dir} {what}: "
                          "give a folder of images like those the model will see")
    files = sorted(p for p in calib_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SourceError(f"no images in calibration folder {calib_dir} or its subfolders "
                          f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(files) > count:
        # evenly spread rather than the first `count`: folders are often sorted by scene, camera or class
        files = [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]
    elif len(files) < count:
        log.info("calibration folder %s holds %d images, fewer than the %d asked for: using all",
                 calib_dir, len(files), count)
    return files


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that stay float: the YOLO head's decoding and everything after it.

    That is the head module's own operations (the DFL softmax and its fixed-weight conv, the anchor arithmetic, the
    class sigmoid, the reshapes and concatenations that build the detection output) and every operation outside the
    model's numbered layers (an NMS-in-graph wrapper). They cost little and do not survive int8. Measured on the
    test model (mask / box mAP50-95, FP32 0.402 / 0.403; 100 synthetic calibration images, minmax):

    * nothing float: 0.000 / 0.000. The last concat holds pixel coordinates (0-320), class probabilities (0-1) and
      mask coefficients under one scale, so every class score rounds to 0.
    * that concat float: 0.390 / 0.378. Box coordinates quantized just before it lose about a pixel.
    * the decoding but the DFL float: 0.398 / 0.401; all of the decoding float (this function): 0.399 / 0.404.
    * the head's learned layers float as well (box, class and mask-coefficient branches, prototypes): no better,
      0.397-0.399 / 0.403-0.404, and up to 1.9x slower (12.2 ms against 22.7 ms a 320x320 image on 2 x86 cores).

    Nodes are found by the module scopes PyTorch's exporter writes into node names ("/model.23/dfl/conv/Conv",
    "/model/model.23/Concat_4" in an NMS export): the head is the last of the model's numbered layers.
    """
    layers = [(node.name, _LAYER.search(node.name)) for node in model.graph.node]
    indices = [int(m.group(1)) for _, m in layers if m]
    if not indices:
        raise ExportError("cannot find the YOLO head: the node names carry no '/model.N/' layer scopes, "
                          "so this is not an Ultralytics ONNX export; export the model with Ultralytics")
    head = max(indices)
    keep = []
    for name, m in layers:
        inside = m.group(2) if m and int(m.group(1)) == head else None
        if m is None or (inside is not None and ("/" not in inside or inside.startswith("dfl/"))):
            keep.append(name)
    return keep


def _load_float_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        if path.exists():  # as edgeseg's runtime says it
            raise ModelFormatError(f"model path is not a file: {path}")
        raise ModelNotFoundError(f"model file not found: {path}")
    try:
        proto = onnx.load(path)
    except Exception as e:  # protobuf raises DecodeError, onnx raises others, for files that are not ONNX
        raise ModelFormatError(f"cannot read {path} as an ONNX model (truncated, corrupt or not ONNX): "
                               f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    if not proto.graph.node or len(proto.graph.input) != 1:
        raise ModelFormatError(f"{path} is not a YOLO model: a YOLO model has one image input and a graph")
    ops = {n.op_type for n in proto.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv"}:
        raise ExportError(f"{path} is already quantized: quantize the float32 model instead")
    # an FP16 export may keep a float32 input and output and hold float16 weights: look at both
    half = proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 or any(
        t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    if half:
        raise ExportError(f"{path} is an FP16 model: quantize the float32 export (half=False) instead")
    return proto


def _round_size(total: int, most: int) -> int:
    """The largest divisor of `total` not above `most`: quantize_static needs rounds of equal size."""
    return max(d for d in range(1, min(total, most) + 1) if total % d == 0)

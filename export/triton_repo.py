"""A Triton Inference Server model repository for an edgeseg model: `edgeseg export M.onnx --triton REPO`.

    REPO/
      README.md                    how to start it, what each model does, what was and was not tested
      edgeseg/                     the ensemble clients call: IMAGE (JPEG/PNG bytes) -> DETECTIONS (JSON bytes)
      edgeseg_preprocess/          Python backend: decode + letterbox (edgeseg.integrations.triton_models)
      edgeseg_network/             the network: onnxruntime backend (model.onnx) or TensorRT (model.plan)
      edgeseg_postprocess/         Python backend: decode, NMS, masks -> Results.to_records rows as JSON

Every stage batches dynamically when the network takes a dynamic batch (a model exported with dynamic=True); a model
with a fixed batch of 1 is served one image per run. The Python stages need `pip install edgeseg` in the Python
backend's environment; what they know about the network (input size, head kind, class names, conf, iou, ...) is in
their config.pbtxt's `edgeseg` parameter. The folder is written under a temporary name beside REPO and renamed to
REPO when complete; REPO must not exist or be empty, and the model file is only read.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.config import PredictConfig
from edgeseg.errors import ConfigError, ModelFormatError, ModelNotFoundError, OutputError, ProviderError

log = logging.getLogger(__name__)

DEFAULT_NAME = "edgeseg"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 2000  # how long a stage's dynamic batcher waits for more requests
KINDS = ("gpu", "cpu")  # where the network's instances run (the Python stages always run on the CPU)
ULTRALYTICS_TENSORS = ("images", "output0", "output1")  # Ultralytics' names: input, detections, prototypes
DATA_TYPES = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.float16): "TYPE_FP16"}
MODEL_PY = '''"""edgeseg's {stage} stage as a Triton Python-backend model (needs `pip install edgeseg` in the Python
backend's environment). Its settings are the `edgeseg` parameter of config.pbtxt."""

from edgeseg.integrations.triton_models import {cls} as TritonPythonModel  # noqa: F401
'''


@dataclass(frozen=True)
class NetworkSpec:
    """What the repository needs to know about the network: tensor names, dims (None: dynamic) and dtypes, the head,
    class names and the input size edgeseg letterboxes to."""

    input_name: str
    input_dims: tuple[int | None, ...]  # (B, 3, H, W)
    input_dtype: np.dtype
    det_name: str
    det_dims: tuple[int | None, ...]
    det_dtype: np.dtype
    protos_name: str
    protos_dims: tuple[int | None, ...]
    protos_dtype: np.dtype
    end2end: bool
    num_classes: int
    names: dict[int, str]
    imgsz: tuple[int, int]
    stride: int
    dynamic_hw: bool
    max_engine_batch: int | None = None  # an engine's largest profile batch, when its build record says
    notes: tuple[str, ...] = ()

    @property
    def batching(self) -> bool:
        """Whether the network takes a dynamic batch (Triton can then batch requests together)."""
        return self.input_dims[0] is None


@dataclass(frozen=True)
class TritonRepository:
    """A written repository: its folder, the model names (ensemble first), the network's backend, the batch Triton
    gathers (0: none, the model takes one image per run), and notes the writer had to make."""

    path: Path
    ensemble: str
    models: tuple[str, ...]
    network_backend: str
    max_batch_size: int
    notes: tuple[str, ...] = field(default=())

    def format(self) -> str:
        batching = (f"dynamic batching up to {self.max_batch_size}" if self.max_batch_size else
                    "no batching (the model takes one image per run)")
        lines = [f"wrote the Triton model repository {self.path}: ensemble '{self.ensemble}' "
                 f"({' -> '.join(self.models[1:])}), network on {self.network_backend}, {batching}",
                 f"start it as {self.path / 'README.md'} says"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def write_triton_repository(model: str | os.PathLike, repo: str | os.PathLike, *, name: str = DEFAULT_NAME,
                            max_batch: int = DEFAULT_MAX_BATCH, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
                            kind: str = "gpu", instances: int = 1, python_instances: int = 1,
                            imgsz: int | tuple[int, int] | None = None, conf: float = 0.25, iou: float = 0.7,
                            max_det: int = 300, classes: Iterable[int] | None = None, agnostic_nms: bool = False,
                            multi_label: bool = False, retina_masks: bool = True) -> TritonRepository:
    """Writes a Triton model repository for `model` (.onnx: onnxruntime backend; .engine / .plan: TensorRT) into
    the new folder `repo` and returns what it wrote.

    max_batch: the largest batch Triton gathers for each stage (when the model takes a dynamic batch); queue_delay_us:
    how long a stage waits for more requests. kind: where the network runs ("gpu" or "cpu"; an engine runs on the
    GPU only). instances, python_instances: model instances of the network and of each Python stage. imgsz: the input
    size of a model with a dynamic input size (default 640, as the Segmenter). conf ... retina_masks: the
    post-processing settings, as Segmenter(model, ...) takes them.

    Raises:
        ModelNotFoundError, ModelFormatError, NotSegmentationModelError: `model` is not a YOLO segmentation model.
        ConfigError: a bad setting.
        OutputError: `repo` exists and is not an empty folder, or cannot be written.
    """
    model = Path(model)
    _check_name(name)
    for what, value, low in (("max_batch", max_batch, 1), ("queue_delay_us", queue_delay_us, 0),
                             ("instances", instances, 1), ("python_instances", python_instances, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{what} must be a whole number of at least {low}, got {value!r}")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    predict = PredictConfig(conf=conf, iou=iou, max_det=max_det, agnostic_nms=agnostic_nms, multi_label=multi_label,
                            classes=None if classes is None else tuple(classes), retina_masks=retina_masks)
    repo = Path(repo)
    _check_new_folder(repo)
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        spec, backend = inspect_onnx(model, imgsz), "onnxruntime"
    elif suffix in (".engine", ".plan"):
        if kind != "gpu":
            raise ConfigError("a TensorRT engine runs on the GPU only: kind must be 'gpu'")
        spec, backend = inspect_engine(model, imgsz), "tensorrt"
    elif not model.exists():
        raise ModelNotFoundError(f"model file not found: {model}")
    else:
        raise ModelFormatError(f"{model.name}: a Triton repository is written for an .onnx model or a TensorRT "
                               ".engine / .plan; export a checkpoint first (edgeseg export M.pt)")
    if predict.classes is not None and (unknown := [c for c in predict.classes if c >= spec.num_classes > 0]):
        raise ConfigError(f"classes {unknown} are not classes of {model.name}: it has {spec.num_classes}")
    notes = list(spec.notes)
    batch = max_batch if spec.batching else 0
    if spec.batching and spec.max_engine_batch is not None and spec.max_engine_batch < max_batch:
        notes.append(f"max_batch lowered from {max_batch} to {spec.max_engine_batch}, the engine's largest batch")
        batch = spec.max_engine_batch
    if not spec.batching:
        if spec.input_dims[0] != 1:
            raise ModelFormatError(f"{model.name} takes batches of exactly {spec.input_dims[0]} images; a Triton "
                                   "repository serves one image per request: export with batch 1 or dynamic=True")
        notes.append(f"{model.name} takes a fixed batch of 1: Triton cannot batch requests for it (export with "
                     "dynamic=True, e.g. `edgeseg export M.pt --dynamic --batch 8`, to batch them)")
    names = Names(name)
    files = {
        f"{names.ensemble}/config.pbtxt": ensemble_config(names, spec, batch),
        f"{names.preprocess}/config.pbtxt": preprocess_config(names, spec, batch, queue_delay_us, python_instances),
        f"{names.preprocess}/1/model.py": MODEL_PY.format(stage="pre-processing", cls="PreprocessModel"),
        f"{names.network}/config.pbtxt": network_config(names, spec, batch, queue_delay_us, backend, kind, instances),
        f"{names.postprocess}/config.pbtxt": postprocess_config(names, spec, batch, queue_delay_us, python_instances,
                                                                predict),
        f"{names.postprocess}/1/model.py": MODEL_PY.format(stage="post-processing", cls="PostprocessModel"),
        "README.md": readme(names, spec, batch, backend, model.name, notes),
    }
    network_file = f"{names.network}/1/model.onnx" if backend == "onnxruntime" else f"{names.network}/1/model.plan"
    _write_folder(repo, files, network_file, model, backend, names)
    log.info("wrote the Triton model repository %s", repo)
    return TritonRepository(repo, names.ensemble, (names.ensemble, names.preprocess, names.network, names.postprocess),
                            backend, batch, tuple(notes))


@dataclass(frozen=True)
class Names:
    """The four model names of a repository: the ensemble's and its stages'."""

    ensemble: str

    preprocess = property(lambda self: f"{self.ensemble}_preprocess")
    network = property(lambda self: f"{self.ensemble}_network")
    postprocess = property(lambda self: f"{self.ensemble}_postprocess")


def inspect_onnx(model: Path, imgsz: int | tuple[int, int] | None) -> NetworkSpec:
    """The NetworkSpec of an ONNX model, read by opening it as the Segmenter does (ONNX Runtime on the CPU)."""
    from edgeseg import Segmenter

    with Segmenter(model, providers=["cpu"], imgsz=imgsz) as seg:
        return _spec_of(seg)


def inspect_engine(model: Path, imgsz: int | tuple[int, int] | None) -> NetworkSpec:
    """The NetworkSpec of a TensorRT engine: read by TensorRT when it is installed here (and a GPU is), else from
    the file's metadata (Ultralytics' header or edgeseg's sidecar) with Ultralytics' tensor names, which Triton's
    TensorRT backend checks against the plan when it loads it."""
    from edgeseg import Segmenter

    try:
        with Segmenter(model, imgsz=imgsz) as seg:
            return _spec_of(seg, _profile_batch(model))
    except ProviderError as e:
        why = str(e).splitlines()[0]
    return _engine_spec_from_metadata(model, imgsz, why)


def _spec_of(seg: Any, max_engine_batch: int | None = None) -> NetworkSpec:
    """The NetworkSpec of an open Segmenter: its model's tensors (seg.backend) and what seg.spec read from them."""
    spec, backend = seg.spec, seg.backend
    det, protos = spec.split(backend.outputs)
    return NetworkSpec(
        input_name=backend.input.name, input_dims=tuple(backend.input.shape), input_dtype=np.dtype(spec.input_dtype),
        det_name=det.name, det_dims=tuple(det.shape), det_dtype=np.dtype(det.dtype), protos_name=protos.name,
        protos_dims=tuple(protos.shape), protos_dtype=np.dtype(protos.dtype), end2end=spec.end2end,
        num_classes=spec.num_classes, names=dict(spec.names), imgsz=tuple(spec.imgsz), stride=spec.stride,
        dynamic_hw=spec.dynamic_hw, max_engine_batch=max_engine_batch)


def _engine_spec_from_metadata(model: Path, imgsz: int | tuple[int, int] | None, why: str) -> NetworkSpec:
    from edgeseg.config import parse_imgsz
    from edgeseg.model.backends.engine_file import read_engine_file
    from edgeseg.model.metadata import ModelMetadata, class_names

    engine = read_engine_file(model)
    meta = ModelMetadata.from_strings(engine.metadata)
    meta.check_task(model.name)
    if meta.imgsz is None or meta.names is None:
        raise ModelFormatError(f"{model.name}: TensorRT could not open it here ({why}) and its metadata does not "
                               "give its input size and class names; write the repository on a machine with "
                               "TensorRT and a GPU, or from the .onnx it was built from")
    size = parse_imgsz(imgsz) or meta.imgsz
    if tuple(size) != tuple(meta.imgsz):
        raise ConfigError(f"{model.name} was built for {meta.imgsz[0]}x{meta.imgsz[1]}; imgsz {imgsz} is not possible")
    batch = None if meta.dynamic else (meta.batch or 1)
    nc = len(meta.names)
    note = (f"{model.name}: TensorRT could not open it here ({why}); its tensors were taken as Ultralytics names "
            f"them ({', '.join(ULTRALYTICS_TENSORS)}, FP32), which Triton checks against the plan when it loads it")
    h, w = meta.imgsz
    return NetworkSpec(
        input_name=ULTRALYTICS_TENSORS[0], input_dims=(batch, 3, h, w), input_dtype=np.dtype(np.float32),
        det_name=ULTRALYTICS_TENSORS[1], det_dims=(batch, None, None), det_dtype=np.dtype(np.float32),
        protos_name=ULTRALYTICS_TENSORS[2], protos_dims=(batch, None, None, None), protos_dtype=np.dtype(np.float32),
        end2end=bool(meta.end2end), num_classes=nc, names=class_names(meta, nc), imgsz=(h, w),
        stride=meta.stride or 32, dynamic_hw=False, max_engine_batch=_profile_batch(model), notes=(note,))


def _profile_batch(model: Path) -> int | None:
    """The largest batch of an engine's optimisation profile, from edgeseg's sidecar build record, when it says."""
    from edgeseg.model.backends.engine_file import read_engine_file

    high = read_engine_file(model).build.get("max_shape")
    return int(high[0]) if isinstance(high, (list, tuple)) and high and isinstance(high[0], int) else None


# ---- config.pbtxt text -------------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dims(dims: Sequence[int | None], batch: int) -> str:
    """A tensor's dims as config.pbtxt gives them: without the batch dimension when Triton batches (max_batch_size
    > 0), else whole; -1 where dynamic."""
    kept = dims[1:] if batch else dims
    return "[ " + ", ".join(str(-1 if d is None else int(d)) for d in kept) + " ]"


def _tensor(name: str, dtype: str, dims: str) -> str:
    return f'  {{\n    name: {_quoted(name)}\n    data_type: {dtype}\n    dims: {dims}\n  }}'


def _tensors(kind: str, items: Sequence[tuple[str, str, str]]) -> str:
    return f"{kind} [\n" + ",\n".join(_tensor(*item) for item in items) + "\n]\n"


def _batching(batch: int, queue_delay_us: int) -> str:
    return f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n" if batch else ""


def _instances(count: int, kind: str) -> str:
    return f"instance_group [\n  {{\n    count: {count}\n    kind: KIND_{kind.upper()}\n  }}\n]\n"


def _parameter(key: str, value: str) -> str:
    return f"parameters {{\n  key: {_quoted(key)}\n  value {{ string_value: {_quoted(value)} }}\n}}\n"


def _stage_settings(spec: NetworkSpec, **more: Any) -> str:
    from edgeseg import __version__
    from edgeseg.integrations.triton_models import FORMAT

    return json.dumps({"format": FORMAT, "edgeseg_version": __version__, **more}, sort_keys=True)


def _image_dims(batch: int) -> str:
    # one encoded image per batch item; without batching, a request still holds one image as a (1, 1) tensor
    return "[ 1 ]" if batch else "[ 1, 1 ]"


def preprocess_config(names: Names, spec: NetworkSpec, batch: int, queue_delay_us: int, instances: int) -> str:
    from edgeseg.integrations.triton_models import IMAGE, LETTERBOX, LETTERBOX_FIELDS

    lead = "" if batch else "1, "
    settings = _stage_settings(spec, input_name=spec.input_name, imgsz=list(spec.imgsz), stride=spec.stride,
                               input_dtype=spec.input_dtype.name, dynamic_hw=spec.dynamic_hw)
    return (f'name: {_quoted(names.preprocess)}\nbackend: "python"\nmax_batch_size: {batch}\n'
            + _tensors("input", [(IMAGE, "TYPE_STRING", _image_dims(batch))])
            + _tensors("output", [(spec.input_name, DATA_TYPES[spec.input_dtype], _dims(spec.input_dims, batch)),
                                  (LETTERBOX, "TYPE_INT64", f"[ {lead}{LETTERBOX_FIELDS} ]")])
            + _batching(batch, queue_delay_us) + _instances(instances, "cpu") + _parameter("edgeseg", settings))


def network_config(names: Names, spec: NetworkSpec, batch: int, queue_delay_us: int, backend: str, kind: str,
                   instances: int) -> str:
    head = 'backend: "onnxruntime"' if backend == "onnxruntime" else 'platform: "tensorrt_plan"'
    return (f"name: {_quoted(names.network)}\n{head}\nmax_batch_size: {batch}\n"
            + _tensors("input", [(spec.input_name, DATA_TYPES[spec.input_dtype], _dims(spec.input_dims, batch))])
            + _tensors("output", [(spec.det_name, DATA_TYPES[spec.det_dtype], _dims(spec.det_dims, batch)),
                                  (spec.protos_name, DATA_TYPES[spec.protos_dtype], _dims(spec.protos_dims, batch))])
            + _batching(batch, queue_delay_us) + _instances(instances, kind))


def postprocess_config(names: Names, spec: NetworkSpec, batch: int, queue_delay_us: int, instances: int,
                       predict: PredictConfig) -> str:
    from edgeseg.integrations.triton_models import DETECTIONS, LETTERBOX, LETTERBOX_FIELDS, POSTPROCESS_SETTINGS

    lead = "" if batch else "1, "
    settings = _stage_settings(
        spec, end2end=spec.end2end, num_classes=spec.num_classes, names={str(k): v for k, v in spec.names.items()},
        det_input=spec.det_name, protos_input=spec.protos_name,
        predict={k: (list(v) if isinstance(v, tuple) else v) for k in POSTPROCESS_SETTINGS
                 for v in [getattr(predict, k)]})
    return (f'name: {_quoted(names.postprocess)}\nbackend: "python"\nmax_batch_size: {batch}\n'
            + _tensors("input", [(spec.det_name, DATA_TYPES[spec.det_dtype], _dims(spec.det_dims, batch)),
                                 (spec.protos_name, DATA_TYPES[spec.protos_dtype], _dims(spec.protos_dims, batch)),
                                 (LETTERBOX, "TYPE_INT64", f"[ {lead}{LETTERBOX_FIELDS} ]")])
            + _tensors("output", [(DETECTIONS, "TYPE_STRING", _image_dims(batch))])
            + _batching(batch, queue_delay_us) + _instances(instances, "cpu") + _parameter("edgeseg", settings))


def ensemble_config(names: Names, spec: NetworkSpec, batch: int) -> str:
    from edgeseg.integrations.triton_models import DETECTIONS, IMAGE, LETTERBOX

    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = [f"      input_map {{ key: {_quoted(k)} value: {_quoted(v)} }}" for k, v in inputs.items()]
        maps += [f"      output_map {{ key: {_quoted(k)} value: {_quoted(v)} }}" for k, v in outputs.items()]
        return f"    {{\n      model_name: {_quoted(model)}\n      model_version: -1\n" + "\n".join(maps) + "\n    }"

    steps = [
        step(names.preprocess, {IMAGE: IMAGE}, {spec.input_name: "network_input", LETTERBOX: "letterbox"}),
        step(names.network, {spec.input_name: "network_input"}, {spec.det_name: "detections_raw",
                                                                  spec.protos_name: "prototypes"}),
        step(names.postprocess, {spec.det_name: "detections_raw", spec.protos_name: "prototypes",
                                 LETTERBOX: "letterbox"}, {DETECTIONS: DETECTIONS}),
    ]
    meta = json.dumps({"names": {str(k): v for k, v in spec.names.items()}, "imgsz": list(spec.imgsz)},
                      sort_keys=True)
    return (f'name: {_quoted(names.ensemble)}\nplatform: "ensemble"\nmax_batch_size: {batch}\n'
            + _tensors("input", [(IMAGE, "TYPE_STRING", _image_dims(batch))])
            + _tensors("output", [(DETECTIONS, "TYPE_STRING", _image_dims(batch))])
            + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
            + _parameter("edgeseg", meta))


def readme(names: Names, spec: NetworkSpec, batch: int, backend: str, model_name: str, notes: Sequence[str]) -> str:
    from edgeseg import __version__

    network = ("the onnxruntime backend (model.onnx)" if backend == "onnxruntime" else
               "the TensorRT backend (model.plan: the engine without Ultralytics' metadata header; it must have been "
               "built with the TensorRT version of the Triton container, on its GPU model)")
    batching = (f"Each stage batches requests dynamically, up to {batch} images per run." if batch else
                f"{model_name} takes a fixed batch of 1, so Triton runs one image at a time; export the checkpoint "
                "with dynamic=True for dynamic batching.")
    note_lines = "".join(f"- {n}\n" for n in notes)
    return f"""# Triton model repository for {model_name}

Written by edgeseg {__version__} (`edgeseg export {model_name} --triton ...`). Clients call the ensemble
`{names.ensemble}`: input `IMAGE`, the bytes of a JPEG or PNG file (TYPE_STRING, shape [1, 1]); output `DETECTIONS`,
one JSON object per image (TYPE_STRING): `{{"source", "width", "height", "batch_size", "objects": [...]}}` with one
row per object as `Results.to_records()` gives it (x1, y1, x2, y2 in source pixels, score, class_id, class_name,
mask_height, mask_width and mask_counts: the mask at source resolution as COCO compressed RLE).

| model | backend | does |
| --- | --- | --- |
| `{names.preprocess}` | python | decodes the image, letterboxes it as edgeseg's Segmenter does |
| `{names.network}` | {backend} | the network ({network}) |
| `{names.postprocess}` | python | edgeseg's decode, NMS and masks inside each box (on the CPU) |
| `{names.ensemble}` | ensemble | chains the three |

{batching} Input {spec.imgsz[0]}x{spec.imgsz[1]}; {len(spec.names)} classes; {"NMS in the graph" if spec.end2end
else "raw head, NMS by edgeseg"}. The post-processing settings (conf, iou, max_det, classes, ...) and everything the
Python stages know about the network are the `edgeseg` parameter of their config.pbtxt.

## Start it

The Python stages need edgeseg in the Python backend's environment (pip's NumPy < 2 is what edgeseg's tests ran
the Python backend with):

```bash
docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v "$PWD":/models \\
    nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
    bash -c 'pip install edgeseg "numpy<2" && tritonserver --model-repository=/models'
```

(run it from this folder; pick a container release whose TensorRT built the engine, for a .plan). Then, from Python:

```python
from edgeseg.integrations.triton import TritonClient

with TritonClient("localhost:8001", model="{names.ensemble}") as client:   # gRPC; "http://localhost:8000" for HTTP
    results = client.infer(["bus.jpg"])        # edgeseg Results: r.boxes.xyxy, r.masks.data, r.plot(), ...
    answers = client.records(["bus.jpg"])      # the JSON answers as dicts
```

## What was tested, and what was not

edgeseg's tests run the two Python stages and this ensemble in the tritonserver that PyTriton bundles (Python backend
only), with the network played by a Python-backend model running ONNX Runtime, and compare every answer with a local
`Segmenter` run. The `onnxruntime` and `tensorrt` backends themselves were NOT run: neither ships with that server,
and no Triton container was run. `{names.network}/config.pbtxt` is written for them from the model's own tensors.
{note_lines}"""


# ---- writing -----------------------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ConfigError(f"the ensemble name must be letters, digits, '_' and '-', got {name!r}")


def _check_new_folder(repo: Path) -> None:
    """OutputError unless `repo` is free for a new repository: missing, or an empty folder."""
    try:
        if repo.is_dir():
            if any(repo.iterdir()):
                raise OutputError(f"{repo} is not empty: give a new folder for the Triton repository (nothing in an "
                                  "existing one is replaced)")
        elif repo.exists() or repo.is_symlink():
            raise OutputError(f"{repo} exists and is not a folder: give a new folder for the Triton repository")
    except OSError as e:
        raise OutputError(f"cannot check {repo}: {e.strerror or e}") from None


def _write_folder(repo: Path, files: dict[str, str], network_file: str, model: Path, backend: str,
                  names: Names) -> None:
    """Writes `files` and the network under a temporary name beside `repo`, then renames it to `repo`; on any error
    (or an interrupt) the temporary folder is removed and `repo` is as it was."""
    parent = repo.parent
    tmp = parent / f".{repo.name}.{secrets.token_hex(4)}.tmp"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise OutputError(f"cannot write {repo}: {e.strerror or e}") from None
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (tmp / names.ensemble / "1").mkdir(exist_ok=True)  # an ensemble needs a version folder, empty
        target = tmp / network_file
        target.parent.mkdir(parents=True, exist_ok=True)
        if backend == "onnxruntime":
            shutil.copyfile(model, target)
        else:  # Triton deserializes the plan as is: the engine's bytes without Ultralytics' metadata header
            from edgeseg.model.backends.engine_file import read_engine_file

            target.write_bytes(read_engine_file(model).data)
        _check_new_folder(repo)  # again: something may have appeared there meanwhile
        os.rename(tmp, repo)  # onto a missing or empty folder only
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {repo}: {e.strerror or e}") from None
        raise


# ---- the command line (edgeseg export M.onnx --triton REPO) ------------------------------------------------------


def add_arguments(parser: Any) -> None:
    """The --triton options of `edgeseg export`."""
    parser.add_argument("--triton", type=Path, metavar="REPO",
                        help="write a Triton model repository for the model (an .onnx or .engine given directly, or "
                             "the export of a .pt) into the new folder REPO")
    parser.add_argument("--triton-max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help=f"largest batch Triton gathers per stage ({DEFAULT_MAX_BATCH})")
    parser.add_argument("--triton-kind", choices=KINDS, default="gpu", help="where the network runs in Triton (gpu)")


def run_from_args(args: Any, model: str | os.PathLike) -> TritonRepository:
    """Writes the repository the --triton options of `edgeseg export` ask for, for `model`, and prints what it
    wrote."""
    repo = write_triton_repository(model, args.triton, max_batch=args.triton_max_batch, kind=args.triton_kind)
    print(repo.format())
    return repo

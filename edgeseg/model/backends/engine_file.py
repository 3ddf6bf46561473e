"""TensorRT engine files: the bytes TensorRT deserializes and the metadata that goes with them.

Engine metadata (class names, stride, task, ...) lives in a JSON sidecar, `{engine}.json`, holding the ONNX model's
metadata strings and a fingerprint of the engine it belongs to; an engine from Ultralytics' `format=engine` export
carries it in a header before the engine instead. Reading them needs no TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ModelFormatError, ModelNotFoundError
from ...outputs.files import write_bytes

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan")
SIDECAR_FORMAT = "edgeseg-engine-metadata/1"


def sidecar_path(engine: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, engine_data: bytes | memoryview, metadata: Mapping[str, str],
                  build: Mapping[str, Any] | None = None) -> Path:
    """Writes `{engine}.json`: the ONNX model's metadata strings, how the engine was built, and the engine's
    SHA-256, so that a sidecar left over from another build is recognised."""
    record = {
        "format": SIDECAR_FORMAT,
        "engine_sha256": hashlib.sha256(engine_data).hexdigest(),
        "metadata": {str(k): str(v) for k, v in metadata.items()},
        "build": dict(build or {}),
    }
    return write_bytes(sidecar_path(engine), json.dumps(record, indent=1).encode())


@dataclass
class EngineFile:
    """An engine file read from disk: the bytes TensorRT deserializes, and what the file says about itself."""

    data: memoryview
    metadata: dict[str, str] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)  # the sidecar's build record ({} when unknown)
    metadata_source: str = "none"  # "sidecar", "ultralytics header" or "none"


def read_engine_file(path: str | Path) -> EngineFile:
    """Reads an engine and its metadata: Ultralytics' header (4-byte length + JSON, before the engine) when the
    file has one, else the `{engine}.json` sidecar, else none (the Segmenter then goes by the output shapes)."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFormatError(f"model path is not a file: {path}")
    data = memoryview(path.read_bytes())
    header = _ultralytics_header(data)
    if header is not None:
        meta, size = header
        return EngineFile(data[4 + size :], meta, {}, "ultralytics header")
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        log.info("edgeseg: %s has no metadata sidecar %s; class names and head type come from the outputs",
                 path.name, sidecar.name)
        return EngineFile(data)
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"cannot read the engine metadata {sidecar}: {e}; rebuild the engine or delete "
                               "the file") from None
    if not (isinstance(record, dict) and record.get("format") == SIDECAR_FORMAT
            and isinstance(record.get("metadata"), dict)):
        raise ModelFormatError(f"{sidecar} is not an edgeseg engine metadata file (format {SIDECAR_FORMAT})")
    if record.get("engine_sha256") != hashlib.sha256(data).hexdigest():
        raise ModelFormatError(f"{sidecar.name} belongs to another build of {path.name} (its engine fingerprint "
                               "differs): rebuild the engine, or delete the sidecar to run without metadata")
    metadata = {str(k): str(v) for k, v in record["metadata"].items()}
    return EngineFile(data, metadata, record.get("build") or {}, "sidecar")


def _ultralytics_header(data: memoryview) -> tuple[dict[str, str], int] | None:
    """Ultralytics writes len(meta) as int32 little-endian, then the metadata JSON, then the engine. A plain
    engine's first bytes never read as a length that is followed by a JSON object."""
    if len(data) < 6:
        return None
    size = int.from_bytes(data[:4], "little", signed=True)
    if not 2 <= size <= len(data) - 4 or data[4] != ord("{"):
        return None
    try:
        meta = json.loads(bytes(data[4 : 4 + size]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    # Its values are JSON values; edgeseg's metadata are the strings ONNX holds (Python literals), as repr gives.
    return {str(k): v if isinstance(v, str) else repr(v) for k, v in meta.items()}, size

"""What the Ray integrations share: a Segmenter made from plain settings (what crosses to a Ray worker), image bytes
decoded as edgeseg reads image files, and the fixed table schema of Results.to_records rows."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..config import ProviderOptions
from ..errors import ConfigError, SourceError
from ..segmenter import Segmenter

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# Results.to_records' columns, in its order, and their Arrow types; `error` (null on every object row) is what a
# Ray task reports for an input it could not read, on a row of its own. A fixed schema keeps Arrow from guessing a
# null type for a column that is null in one block (track_id of images) and int64 in another (of videos).
RECORD_COLUMNS = (
    ("source", "string"), ("frame", "int64"), ("object", "int64"), ("x1", "float64"), ("y1", "float64"),
    ("x2", "float64"), ("y2", "float64"), ("score", "float64"), ("class_id", "int64"), ("class_name", "string"),
    ("track_id", "int64"), ("track_class", "int64"), ("mask_height", "int64"), ("mask_width", "int64"),
    ("mask_counts", "string"),
)
ERROR_COLUMN = "error"

# what Segmenter(model, ...) takes besides the model: the settings a Ray worker's Segmenter can be given
SEGMENTER_SETTINGS = frozenset(inspect.signature(Segmenter.__init__).parameters) - {"self", "model"}


def record_schema() -> pa.Schema:
    """The Arrow schema of record rows: RECORD_COLUMNS, then `error` (string)."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in RECORD_COLUMNS] + [(ERROR_COLUMN, pa.string())])


def records_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Record rows (Results.to_records' dicts, or error rows) as a table of record_schema(); a key the schema does not
    know is a ConfigError (a column would be dropped without a word)."""
    import pyarrow as pa

    schema = record_schema()
    unknown = {key for row in rows for key in row} - set(schema.names)
    if unknown:
        raise ConfigError(f"record rows have columns the table schema lacks: {', '.join(sorted(unknown))}")
    return pa.Table.from_pylist(rows, schema=schema)


def error_row(source: str, message: str) -> dict[str, Any]:
    """The row that stands for an input that could not be read: its source and why; every other column null."""
    return {"source": source, ERROR_COLUMN: message}


def open_segmenter(model: str | Path, threads: int | None = None, settings: Mapping[str, Any] | None = None,
                   warmup: bool = False) -> Segmenter:
    """Segmenter(model, **settings) with ONNX Runtime's CPU threads set to `threads` (None: its default). A setting
    Segmenter does not take is a ConfigError that names the ones it takes."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - SEGMENTER_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown Segmenter setting(s): {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(SEGMENTER_SETTINGS))}")
    options = settings.pop("provider_options", None)
    if not isinstance(options, ProviderOptions):
        options = ProviderOptions.from_mapping(options)
    if threads is not None:
        options = options.replace(cpu_threads=threads)
    segmenter = Segmenter(model, provider_options=options, **settings)
    if warmup:
        segmenter.warmup()
    return segmenter


def decode_image(data: bytes | np.ndarray, name: str) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ... as a file holds them) -> (H, W, 3) uint8 BGR, decoded as read_image
    decodes a file (cv2.IMREAD_COLOR), so that the results are those of the same file read from disk. SourceError
    naming `name` for empty data or data that is not an image."""
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buffer.size == 0:
        raise SourceError(f"{name} is empty: send the bytes of a JPEG or PNG image")
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV refuses some data by raising rather than returning None
        raise SourceError(f"cannot decode {name} as an image: OpenCV failed ({e.err})") from None
    if image is None:
        raise SourceError(f"cannot decode {name} as an image (truncated, or not a JPEG, PNG or other image file)")
    return image

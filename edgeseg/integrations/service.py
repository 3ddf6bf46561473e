"""The Ray Serve deployment behind `edgeseg serve` (imports Ray Serve: load it through serve.build_app, which keeps
`edgeseg --help` free of Ray). One Segmenter per replica; concurrent requests are batched with @serve.batch."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import ConfigError, EdgesegError, SourceError
from ..inputs.frames import Frame
from ..results import Results
from .common import decode_image, open_segmenter

log = logging.getLogger(__name__)

FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


@serve.deployment
class SegmentService:
    """POST an image (its JPEG or PNG bytes as the body, or a multipart/form-data file) -> JSON:
    {"source": name, "width": W, "height": H, "batch_size": n, "objects": rows}: one Results.to_records row per
    object (box, score, class, RLE mask), or with ?polygons=1 the row with its outline, "polygon" [[x, y], ...]
    (masks.xy), instead of the RLE mask. batch_size: how many requests ran together in this one's batch.

    A bad upload (empty, too large, not an image, a bad query) is HTTP 400 with {"error": one-line message}; an
    unexpected failure is HTTP 500 with the error's one line (the traceback goes to the replica's log only)."""

    def __init__(self, model: str, settings: dict[str, Any], threads: int | None, max_batch_size: int,
                 batch_wait_timeout_s: float, max_bytes: int):
        self.segmenter = open_segmenter(model, threads, settings, warmup=True)
        self.max_bytes = max_bytes
        self.segment.set_max_batch_size(max_batch_size)
        self.segment.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def __call__(self, request: Request) -> JSONResponse:
        if request.method != "POST":
            return JSONResponse({"error": "POST a JPEG or PNG image: the bytes as the body, or a multipart file"},
                                status_code=405)
        try:
            polygons = _flag(request.query_params.get("polygons", ""), "polygons")
            name, data = await _upload(request, self.max_bytes)
            image = decode_image(data, name)
        except EdgesegError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        try:
            result, batch_size = await self.segment(Frame(image, 0, name, path=name))
            h, w = result.orig_shape
            objects = await asyncio.to_thread(_polygon_rows if polygons else Results.to_records, result)
        except Exception as e:  # one line to the client; the traceback to the log
            log.exception("segmenting %s failed", name)
            return JSONResponse({"error": f"{type(e).__name__}: {e}".splitlines()[0]}, status_code=500)
        return JSONResponse({"source": name, "width": w, "height": h, "batch_size": batch_size, "objects": objects})

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)  # set from the constructor's arguments
    async def segment(self, frames: list[Frame]) -> list[tuple[Results, int]]:
        """The requests that arrived together, in one predict call (batched as the model allows), in a thread: the
        replica's event loop meanwhile takes in and decodes the next requests."""
        results = await asyncio.to_thread(self.segmenter.predict, frames)
        return [(r, len(frames)) for r in results]


def _flag(text: str, name: str) -> bool:
    try:
        return FLAGS[text.strip().lower()]
    except KeyError:
        raise ConfigError(f"?{name}={text}: give 1 or 0") from None


async def _upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """(name, bytes) of the request's image: the first file of a multipart/form-data body, else the whole body
    (named by ?name=, else "upload"). SourceError when there is none, it is empty, or it is over max_bytes."""
    too_large = SourceError(f"the upload is over the {max_bytes / 2**20:g} MiB limit (edgeseg serve --max-upload-mb)")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + 64 * 1024:  # room for a multipart body's headers
        raise too_large
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=16)
        except Exception as e:  # Starlette's MultiPartException and the parser's own: a malformed body
            raise SourceError(f"cannot read the multipart upload: {e}".splitlines()[0]) from None
        uploads = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not uploads:
            raise SourceError("the multipart upload holds no file: send the image as a file field (e.g. image=@x.jpg)")
        data = await uploads[0].read()
        name = uploads[0].filename or "upload"
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        data = b"".join(chunks)
        name = os.path.basename(request.query_params.get("name", "")) or "upload"
    if len(data) > max_bytes:
        raise too_large
    if not data:
        raise SourceError(f"{name} is empty: send the bytes of a JPEG or PNG image")
    return name, data


def _polygon_rows(result: Results) -> list[dict[str, Any]]:
    """to_records rows with the object's outline (masks.xy, source pixels) as "polygon" [[x, y], ...] in place of
    the RLE mask."""
    rows = []
    for row, outline in zip(result.to_records(), result.masks.xy, strict=True):
        for key in ("mask_height", "mask_width", "mask_counts"):
            row.pop(key)
        row["polygon"] = np.asarray(outline, np.float64).tolist()
        rows.append(row)
    return rows

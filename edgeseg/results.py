"""Results: one object per image, parallel NumPy arrays with the names Ultralytics users know.

Indexing filters: r[r.boxes.conf > 0.5], r[:3], r[i] all return new Results.
Masks are stored compactly: each object's mask covers only its pixel box.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError


def _as_index(index: Any, n: int) -> np.ndarray:
    """Any NumPy-style index (int, slice, bool mask, int array) -> int64 positions."""
    # bool is an int subclass: r[True] would be object 1, so a scalar bool goes to NumPy, which refuses it below
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} objects")
        return np.array([index % n], np.int64)
    positions = np.arange(n)[index]
    if positions.ndim > 1:  # None, a scalar bool or a 2-D array: not a selection of objects
        raise IndexError(f"index {index!r} does not select objects: give an int, a slice, a (N,) bool mask or "
                         "int positions")
    return np.atleast_1d(positions).astype(np.int64)


def _check(name: str, array: np.ndarray, shape: tuple, dtype: Any) -> None:
    if array.dtype != dtype or array.ndim != len(shape) or any(s is not None and a != s
                                                               for a, s in zip(array.shape, shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must be {want} {np.dtype(dtype)}, got {array.shape} {array.dtype}")


@dataclass(frozen=True, eq=False)
class Boxes:
    """N boxes in source-image pixels: xyxy (N, 4) float32, conf (N,) float32, cls (N,) int64."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    orig_shape: tuple[int, int]
    id: np.ndarray | None = None  # (N,) int64 track ids, when tracked
    # (N,) int64: the class each object's track settled on over its history (a score-weighted vote), when a tracker
    # that votes made these boxes; cls stays the detector's class of this frame
    track_cls: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check("xyxy", self.xyxy, (None, 4), np.float32)
        n = len(self.xyxy)
        _check("conf", self.conf, (n,), np.float32)
        _check("cls", self.cls, (n,), np.int64)
        if self.id is not None:
            _check("id", self.id, (n,), np.int64)
        if self.track_cls is not None:
            _check("track_cls", self.track_cls, (n,), np.int64)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Boxes:
        i = _as_index(index, len(self))
        return Boxes(self.xyxy[i], self.conf[i], self.cls[i], self.orig_shape, None if self.id is None else self.id[i],
                     None if self.track_cls is None else self.track_cls[i])

    @property
    def xywh(self) -> np.ndarray:
        """Centre x, centre y, width, height (N, 4) float32."""
        xy = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        return np.concatenate([xy, self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)

    @property
    def xyxyn(self) -> np.ndarray:
        """xyxy divided by the image width and height (N, 4) float32."""
        h, w = self.orig_shape
        return self.xyxy / np.array([w, h, w, h], np.float32)

    @property
    def xywhn(self) -> np.ndarray:
        """xywh divided by the image width and height (N, 4) float32."""
        h, w = self.orig_shape
        return self.xywh / np.array([w, h, w, h], np.float32)

    @property
    def label_cls(self) -> np.ndarray:
        """The class to name and colour each object by: track_cls when a voting tracker settled one, else cls."""
        return self.cls if self.track_cls is None else self.track_cls

    @property
    def is_track(self) -> bool:
        """True when the boxes carry track IDs (id)."""
        return self.id is not None

    @property
    def data(self) -> np.ndarray:
        """Ultralytics' packed boxes, for code that reads columns: (N, 6) float32 x1, y1, x2, y2, conf, cls, or
        (N, 7) x1, y1, x2, y2, id, conf, cls when tracked. Built on each access; the named arrays are the API."""
        ids = [] if self.id is None else [self.id[:, None]]
        return np.concatenate([self.xyxy, *ids, self.conf[:, None], self.cls[:, None]], axis=1, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        """data's shape: (N, 6), or (N, 7) when tracked."""
        return len(self), 7 if self.is_track else 6

    def cpu(self) -> Boxes:
        """Itself: boxes are always in host memory (Ultralytics' boxes.cpu())."""
        return self

    def numpy(self) -> Boxes:
        """Itself: boxes are always NumPy arrays (Ultralytics' boxes.numpy())."""
        return self


@dataclass(frozen=True, eq=False)
class Masks:
    """N binary masks, each stored as the crop of its pixel box: at source resolution (retina_masks=True, edgeseg's
    default), or in the network's input frame (input_shape set: retina_masks=False, Ultralytics' default).

    crops[i] (h_i, w_i) uint8 0/1 is object i's mask over [y0, y0 + h_i) x [x0, x0 + w_i) of the masks' frame
    (frame_shape), with origins[i] = (x0, y0); every pixel outside that box is 0. For masks made by the network at
    source resolution that box is the pixel box of boxes.xyxy, the pixels p with x1 <= p < x2 (ceil(x1) to
    ceil(x2)): not the truncated integer box that isolate() crops to.

    Masks in the input frame are what Ultralytics' retina_masks=False gives: data is (N, in_h, in_w), letterbox
    padding included, and xy / xyn are traced there and scaled to the source as its scale_coords does.
    to_source() brings them to the source image as Ultralytics does to draw them; drawing, cutting out and COCO
    output use that.
    """

    crops: tuple[np.ndarray, ...]
    origins: np.ndarray  # (N, 2) int64 (x0, y0)
    orig_shape: tuple[int, int]
    input_shape: tuple[int, int] | None = None  # (h, w) of the network input the masks are in; None: the source's
    _xy: list[np.ndarray] | None = field(default=None, init=False, repr=False)  # outlines, traced on first use
    _source: Masks | None = field(default=None, init=False, repr=False)  # to_source(), made on first use

    def __post_init__(self) -> None:
        _check("origins", self.origins, (len(self.crops), 2), np.int64)
        h, w = self.frame_shape
        for crop, (x0, y0) in zip(self.crops, self.origins, strict=True):
            if (crop.dtype != np.uint8 or crop.ndim != 2 or x0 < 0 or y0 < 0 or x0 + crop.shape[1] > w
                    or y0 + crop.shape[0] > h):
                raise ValueError(f"mask crop {crop.shape} {crop.dtype} at ({x0}, {y0}) does not fit a {w}x{h} frame")

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(h, w) of the frame the crops are in: input_shape when set, else orig_shape."""
        return self.orig_shape if self.input_shape is None else self.input_shape

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: Any) -> Masks:
        i = _as_index(index, len(self))
        return Masks(tuple(self.crops[k] for k in i), self.origins[i], self.orig_shape, self.input_shape)

    @property
    def shape(self) -> tuple[int, int, int]:
        """data's shape (N, H, W), without building it."""
        return len(self), *self.frame_shape

    def cpu(self) -> Masks:
        """Itself: these masks are in host memory (Ultralytics' masks.cpu())."""
        return self

    def numpy(self) -> Masks:
        """Itself: these masks are NumPy arrays (Ultralytics' masks.numpy())."""
        return self

    @property
    def data(self) -> np.ndarray:
        """Dense masks (N, H, W) uint8 0/1 over frame_shape. Built on each access: keep the result if you need it
        twice."""
        dense = np.zeros(self.shape, np.uint8)
        for k, (crop, (x0, y0)) in enumerate(zip(self.crops, self.origins, strict=True)):
            dense[k, y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        return dense

    def dense(self, i: int) -> np.ndarray:
        """Object i's mask as a full (H, W) uint8 0/1 array over frame_shape."""
        out = np.zeros(self.frame_shape, np.uint8)
        (x0, y0), crop = self.origins[i], self.crops[i]
        out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        return out

    def to_source(self) -> Masks:
        """These masks at source resolution: itself when they are there already; masks in the input frame are
        brought there as Ultralytics draws them (see outputs.source_masks.to_source)."""
        if self.input_shape is None:
            return self
        if self._source is None:
            from .outputs.source_masks import to_source

            object.__setattr__(self, "_source", to_source(self))
        return self._source  # type: ignore[return-value]

    def contours(self, strategy: str = "all") -> list[np.ndarray]:
        """Each object's outline, (K, 2) float32 source pixels, traced on its crop (see contours.object_outlines).
        "all" (Ultralytics' masks2segments default): every outer contour joined into one polygon; "largest": the
        outer contour enclosing the largest area (Ultralytics' own "largest" counts points, not area). ConfigError
        for another strategy, even with no objects."""
        from .outputs.contours import object_outlines

        return object_outlines(self, strategy)

    @property
    def xy(self) -> list[np.ndarray]:
        """Outlines (K, 2) float32 in source pixels, (0, 2) if empty: every outer contour of each object joined, point
        for point what Ultralytics' masks.xy gives (contours("largest") for the largest one alone)."""
        if self._xy is None:
            object.__setattr__(self, "_xy", self.contours("all"))
        return self._xy  # type: ignore[return-value]

    @property
    def xyn(self) -> list[np.ndarray]:
        """xy divided by the image width and height."""
        h, w = self.orig_shape
        return [p / np.array([w, h], np.float32) for p in self.xy]

    @property
    def areas(self) -> np.ndarray:
        """Mask pixel counts (N,) int64, in the masks' frame (frame_shape)."""
        return np.array([int(np.count_nonzero(c)) for c in self.crops], np.int64)


@dataclass(frozen=True, eq=False)
class DeviceMasks:
    """N binary masks left on the GPU (Segmenter(device="cuda", device_results=True)): Masks' layout, with each crop
    a Numba device array (it has __cuda_array_interface__: CuPy and PyTorch view it without a copy).

    flat: the uint8 device buffer holding every crop; crop i covers (h_i, w_i) = shapes[i] from flat[starts[i]], row
    by row, placed at origins[i] = (x0, y0). to_host() copies them into Masks.
    """

    flat: Any
    starts: np.ndarray  # (N,) int64
    shapes: np.ndarray  # (N, 2) int64 (h, w)
    origins: np.ndarray  # (N, 2) int64 (x0, y0)
    orig_shape: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.starts)
        _check("starts", self.starts, (n,), np.int64)
        _check("shapes", self.shapes, (n, 2), np.int64)
        _check("origins", self.origins, (n, 2), np.int64)
        h, w = self.orig_shape
        ends = self.starts + self.shapes[:, 0] * self.shapes[:, 1]
        if n and (self.origins.min() < 0 or np.any(self.origins + self.shapes[:, ::-1] > (w, h))
                  or self.starts.min() < 0 or ends.max() > self.flat.shape[0]):
            raise ValueError(f"device masks do not fit a {w}x{h} image or their {self.flat.shape[0]}-byte buffer")

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: Any) -> DeviceMasks:
        i = _as_index(index, len(self))
        return DeviceMasks(self.flat, self.starts[i], self.shapes[i], self.origins[i], self.orig_shape)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The dense masks' shape (N, H, W)."""
        return len(self), *self.orig_shape

    @property
    def boxes(self) -> np.ndarray:
        """Pixel boxes (N, 4) int64 [x0, y0, x1, y1) of the crops."""
        return np.concatenate([self.origins, self.origins + self.shapes[:, ::-1]], axis=1)

    @property
    def crops(self) -> tuple[Any, ...]:
        """Device views (h_i, w_i) uint8 0/1, one per object (no copy)."""
        return tuple(self.flat[s : s + h * w].reshape(int(h), int(w))
                     for s, (h, w) in zip(self.starts, self.shapes, strict=True))

    def to_host(self) -> Masks:
        """The masks copied to host memory: one copy of the span of the buffer the crops use."""
        if len(self) == 0:
            return Masks((), np.zeros((0, 2), np.int64), self.orig_shape)
        sizes = self.shapes[:, 0] * self.shapes[:, 1]
        low, high = int(self.starts.min()), int((self.starts + sizes).max())
        span = self.flat[low:high].copy_to_host() if high > low else np.zeros(0, np.uint8)
        crops = tuple(span[s - low : s - low + h * w].reshape(int(h), int(w))
                      for s, (h, w) in zip(self.starts, self.shapes, strict=True))
        return Masks(crops, self.origins.copy(), self.orig_shape)

    def cpu(self) -> Masks:
        """to_host(), by Ultralytics' name."""
        return self.to_host()

    def numpy(self) -> Masks:
        """to_host(), by Ultralytics' name."""
        return self.to_host()


@dataclass(eq=False)
class Results:
    """The detections of one image. `speed` holds per-stage milliseconds for this image."""

    orig_img: np.ndarray
    path: str | None
    names: dict[int, str]
    boxes: Boxes
    masks: Masks | DeviceMasks  # DeviceMasks only when asked for (device_results=True); see to_host()
    speed: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.boxes) != len(self.masks):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.masks)} masks")

    @property
    def orig_shape(self) -> tuple[int, int]:
        return self.boxes.orig_shape

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Results:
        i = _as_index(index, len(self))
        return Results(self.orig_img, self.path, self.names, self.boxes[i], self.masks[i], self.speed)

    def __iter__(self) -> Iterator[Results]:
        for k in range(len(self)):
            yield self[k]

    def to_host(self) -> Results:
        """These results with their masks in host memory (itself when they are there already)."""
        if isinstance(self.masks, Masks):
            return self
        return Results(self.orig_img, self.path, self.names, self.boxes, self.masks.to_host(), self.speed)

    def cpu(self) -> Results:
        """to_host(), by Ultralytics' name: itself unless the masks were left on the GPU."""
        return self.to_host()

    def numpy(self) -> Results:
        """to_host(), by Ultralytics' name: itself unless the masks were left on the GPU."""
        return self.to_host()

    def require_host_masks(self, what: str) -> None:
        """ConfigError naming `what` when the masks were left on the GPU: drawing, isolating and exporting read them
        on the host, and copying them behind the caller's back would hide the cost device_results=True avoids."""
        if isinstance(self.masks, DeviceMasks):
            raise ConfigError(f"{what} works on masks in host memory, and these are on the GPU "
                              "(device_results=True): call results.to_host() first")

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for c in self.boxes.cls:
            counts[self.names.get(int(c), str(c))] = counts.get(self.names.get(int(c), str(c)), 0) + 1
        what = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no objects"
        h, w = self.orig_shape
        return f"Results({self.path or 'array'}, {w}x{h}: {what})"

    @property
    def masks_on_device(self) -> bool:
        """True when the masks were left on the GPU (DeviceMasks)."""
        return isinstance(self.masks, DeviceMasks)

    # Output methods: one-line delegates into edgeseg.outputs, imported where they are called, so that this module
    # imports nothing from the modules that use it.
    def isolate(self, background: str = "black", crop: bool = True, source: str = "mask",
                return_origins: bool = False) -> list[np.ndarray] | tuple[list[np.ndarray], np.ndarray]:
        """Each object cut out of orig_img: (h, w, 3) BGR on black or (h, w, 4) BGRA on transparent, cropped
        to its integer box (the classic recipe's truncated xyxy, not masks.origins' pixel box) or full-frame;
        `source="contour"` fills the outline (masks.xy) instead of the mask. With return_origins, also (N, 2) int64
        (x, y) of each cut-out's top-left pixel in the frame. See outputs.isolate.isolate (masks left on the GPU are
        cut out there)."""
        from .outputs.isolate import isolate

        return isolate(self, background, crop, source, return_origins)

    def save_isolated(self, folder: str | Path, background: str = "black", crop: bool = True, source: str = "mask",
                      save_mask: bool = False, save_crop: bool = False, stem: str | None = None) -> list[Path]:
        """Writes each cut-out as `{stem}_{label}-{index}.png` in `folder` (see outputs.isolate.save_isolated)."""
        from .outputs.isolate import save_isolated

        return save_isolated(self, folder, background, crop, source, save_mask, save_crop, stem)

    def to_coco(self, image_id: int | str | None = None, category_ids: Sequence[int] | None = None) -> list[dict]:
        """COCO results: one dict per object with image_id, category_id, bbox [x, y, w, h], score and
        segmentation as compressed RLE (see outputs.coco.to_coco)."""
        from .outputs.coco import to_coco

        return to_coco(self, image_id, category_ids)

    def plot(self, conf: bool = True, labels: bool = True, boxes: bool = True, masks: bool = True,
             color_by: str = "class", line_width: int | None = None, font_size: float | None = None,
             img: np.ndarray | None = None) -> np.ndarray:
        """An annotated copy (H, W, 3) uint8 BGR of orig_img (or `img`): masks, boxes, labels of class name and
        confidence; colours by "class" or "track" (see outputs.annotate.plot)."""
        from .outputs.annotate import plot

        return plot(self, conf=conf, labels=labels, boxes=boxes, masks=masks, color_by=color_by,
                    line_width=line_width, font_size=font_size, img=img)

    def save(self, filename: str | Path | None = None, **plot_options: Any) -> Path:
        """Writes plot(**plot_options) to `filename` (default results_<image name>), atomically; returns the path."""
        from .outputs.annotate import save

        return save(self, filename, **plot_options)

    def show(self, window: str | None = None, wait_ms: int = 0, **plot_options: Any) -> None:
        """Shows plot(**plot_options) in an OpenCV window and waits `wait_ms` for a key (0: until one is pressed).
        OutputError on a headless OpenCV or without a display: use save() there (see outputs.annotate.show)."""
        from .outputs.annotate import show

        show(self, window, wait_ms, **plot_options)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """Ultralytics' records: one dict per object with name, class, confidence, box {x1, y1, x2, y2}, track_id
        when tracked and segments {x, y} from masks.xy (see outputs.records.summary)."""
        from .outputs.records import summary

        return summary(self, normalize, decimals)

    def to_json(self, normalize: bool = False, decimals: int = 5) -> str:
        """summary() as a JSON string (see outputs.records.to_json)."""
        from .outputs.records import to_json

        return to_json(self, normalize, decimals)

    def to_records(self, frame: int | None = None) -> list[dict[str, Any]]:
        """Flat JSON- and Parquet-ready rows, one per object: source, frame, box, score, class, track id and the mask
        as COCO RLE counts (see outputs.records.to_records)."""
        from .outputs.records import to_records

        return to_records(self, frame)

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> Path:
        """Appends YOLO-seg label lines (class, then masks.xyn's x y pairs, conf when asked, track ID when tracked) to
        `txt_file`, as Ultralytics does (see outputs.records.save_txt); returns the path."""
        from .outputs.records import save_txt

        return save_txt(self, txt_file, save_conf)

    def save_crop(self, save_dir: str | Path, file_name: str | Path = "im.jpg") -> list[Path]:
        """Writes each object's box crop (grown 2% + 10 px) to save_dir/<class name>/<file stem>.jpg, as Ultralytics'
        save_crop does (see outputs.isolate.save_crop); returns the paths written."""
        from .outputs.isolate import save_crop

        return save_crop(self, save_dir, file_name)

    def verbose(self) -> str:
        """Ultralytics' log string: "1 circle, 2 squares, " or "(no detections), " (see outputs.records.verbose)."""
        from .outputs.records import verbose

        return verbose(self)

    def to_supervision(self) -> Any:
        """supervision.Detections of these results (pip install "edgeseg[supervision]"; see
        outputs.supervision.to_supervision)."""
        from .outputs.supervision import to_supervision

        return to_supervision(self)

    @classmethod
    def from_supervision(cls, detections: Any, orig_img: np.ndarray, names: dict[int, str],
                         path: str | Path | None = None) -> Results:
        """Results of supervision.Detections (with masks, confidences and class IDs) on orig_img (see
        outputs.supervision.from_supervision)."""
        from .outputs.supervision import from_supervision

        return from_supervision(detections, orig_img, names, path)

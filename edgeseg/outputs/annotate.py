"""Annotators: draw Results on a frame. One base class, one `annotate(frame, results)`; style goes to __init__.

    from edgeseg.outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
    draw = compose(MaskAnnotator(alpha=0.4, color_by="track"), BoxAnnotator(color_by="track"), LabelAnnotator())
    picture = draw.annotate(frame, results)          # a copy; inplace=True draws on `frame` itself

Colours come from one fixed palette, by class (palette[cls % len]) or by track ID (palette[id % len]).
Line widths and text sizes left as None scale with the frame, so a drawing looks the same from 320x240 to 4K.
plot, save and show are Results.plot/save/show: these annotators with Ultralytics' options.
"""

from __future__ import annotations

import os
import sys
from numbers import Real
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, OutputError
from ..kernels.blend import blend_masks
from ..results import Results
from .files import write_image

# one fixed palette (BGR)
PALETTE = np.array([
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72), (23, 204, 146),
    (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100),
    (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
], np.uint8)  # fmt: skip

COLOR_BY = ("class", "track")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Palette:
    """A fixed list of K BGR colours; index k (a class or a track ID) gets colour k % K."""

    def __init__(self, colors=PALETTE) -> None:
        colors = np.asarray(colors)
        if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) == 0 or not np.issubdtype(colors.dtype, np.integer) \
                or colors.min() < 0 or colors.max() > 255:
            raise ConfigError(f"palette must be (K, 3) integer BGR colours in [0, 255] with K >= 1, "
                              f"got {colors.shape} {colors.dtype}")
        self.colors = colors.astype(np.uint8)
        self.colors.flags.writeable = False

    def __len__(self) -> int:
        return len(self.colors)

    def __getitem__(self, index: int) -> tuple[int, int, int]:
        """Colour of one index as a tuple of ints, as OpenCV's drawing functions take it."""
        b, g, r = self.colors[int(index) % len(self.colors)]
        return int(b), int(g), int(r)

    def by_index(self, indices: np.ndarray) -> np.ndarray:
        """Colours (N, 3) uint8 of N indices (any integers; negative ones wrap too)."""
        return self.colors[np.asarray(indices, np.int64) % len(self.colors)]


def line_thickness(shape: tuple[int, ...]) -> int:
    """Line width in pixels for a frame of `shape` (H, W, ...): 2 at 640 px on the long side, at least 1."""
    return max(1, round(max(shape[0], shape[1]) / 320))


def text_style(shape: tuple[int, ...]) -> tuple[float, int]:
    """(font scale, stroke thickness) for labels on a frame of `shape`: 0.5 at 640 px on the long side, in
    proportion above it, and never below 0.4 (about 9 px tall letters) so small frames stay readable."""
    scale = max(0.4, 0.5 * max(shape[0], shape[1]) / 640)
    return scale, max(1, round(2 * scale))


def _check_positive(name: str, value, kind=Real) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or not value > 0):
        raise ConfigError(f"{name} must be a positive number or None (scale with the frame), got {value!r}")


class Annotator:
    """Draws results on a frame. Subclasses set their style in __init__ and implement `_draw(scene, results)`,
    which draws on `scene` in place; `annotate` checks the frame and makes the copy. Those that draw results.masks
    set draws_masks: they need the masks in host memory (see Results.to_host)."""

    draws_masks = False

    def __init__(self, color_by: str = "class", palette: Palette | None = None) -> None:
        if color_by not in COLOR_BY:
            raise ConfigError(f"color_by must be 'class' or 'track', got {color_by!r}")
        if palette is not None and not isinstance(palette, Palette):
            raise ConfigError(f"palette must be an edgeseg.outputs.annotate.Palette, got {type(palette).__name__}")
        self.color_by = color_by
        self.palette = palette or Palette()

    def annotate(self, frame: np.ndarray, results: Results, inplace: bool = False) -> np.ndarray:
        """Draws `results` on `frame` ((H, W, 3) uint8 BGR of the results' size) and returns it: a copy, or
        `frame` itself with inplace=True."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8 BGR, got {getattr(frame, 'shape', type(frame))} "
                             f"{getattr(frame, 'dtype', '')}")
        if frame.shape[:2] != tuple(results.orig_shape):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]} but the results are for a "
                             f"{results.orig_shape[1]}x{results.orig_shape[0]} image")
        self._check_masks(results)  # with or without objects, so that the first frame already says so
        if not inplace:
            scene = frame.copy()
        elif frame.flags.c_contiguous:
            scene = frame
        else:  # OpenCV and the kernels draw on contiguous memory: draw on a copy, then write it back
            scene = np.ascontiguousarray(frame)
        if len(results):
            self._check(results)  # before drawing, so that a refused frame is never left half drawn
            self._draw(scene, results)
        if scene is not frame and inplace:
            frame[...] = scene
            return frame
        return scene

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        raise NotImplementedError

    def _check(self, results: Results) -> None:
        """Raises what drawing these results would raise (ConfigError: no track IDs to colour by)."""
        self.colors(results)

    def _check_masks(self, results: Results) -> None:
        """ConfigError when this annotator draws masks and they were left on the GPU (device_results=True)."""
        if self.draws_masks:
            results.require_host_masks(type(self).__name__)

    def colors(self, results: Results) -> np.ndarray:
        """Colours (N, 3) uint8 of the objects: palette[class % K] (the class a voting tracker settled on, else the
        detector's), or palette[id % K] with color_by="track"."""
        if self.color_by == "class":
            return self.palette.by_index(results.boxes.label_cls)
        if results.boxes.id is None:
            raise ConfigError("color_by='track' needs track IDs (results.boxes.id), but these results have none: "
                              "track the frames first, or colour by class")
        return self.palette.by_index(results.boxes.id)


def _bgr(color: np.ndarray) -> tuple[int, int, int]:
    return int(color[0]), int(color[1]), int(color[2])


class MaskAnnotator(Annotator):
    """Fills each mask with its object's colour, alpha-blended, touching only the pixels of the object's box."""

    draws_masks = True

    def __init__(self, alpha: float = 0.5, color_by: str = "class", palette: Palette | None = None) -> None:
        super().__init__(color_by, palette)
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        masks = results.masks.to_source()  # type: ignore[union-attr]  # host masks: checked before drawing
        blend_masks(scene, masks.crops, masks.origins, self.colors(results), self.alpha)


class _LineAnnotator(Annotator):
    """An annotator that draws lines `thickness` pixels wide; None scales the width with the frame."""

    def __init__(self, thickness: int | None = None, color_by: str = "class", palette: Palette | None = None) -> None:
        super().__init__(color_by, palette)
        _check_positive("thickness", thickness, (int, np.integer))
        self.thickness = None if thickness is None else int(thickness)


class OutlineAnnotator(_LineAnnotator):
    """Draws each object's outline (results.masks.xy) as a closed polyline; thickness None scales with the frame."""

    draws_masks = True

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        thickness = self.thickness or line_thickness(scene.shape)
        for polygon, color in zip(results.masks.xy, self.colors(results), strict=True):
            if len(polygon):
                cv2.polylines(scene, [np.round(polygon).astype(np.int32)], True, _bgr(color), thickness)


class BoxAnnotator(_LineAnnotator):
    """Draws each object's box (rounded to whole pixels, kept in the frame); thickness None scales with the frame."""

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        thickness = self.thickness or line_thickness(scene.shape)
        height, width = scene.shape[:2]
        # corners clamped to the frame, so that a box reaching the frame's edge shows its line there
        last = [width - 1, height - 1, width - 1, height - 1]
        boxes = np.clip(np.round(results.boxes.xyxy).astype(np.int64), 0, last)
        for box, color in zip(boxes, self.colors(results), strict=True):
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(scene, (x1, y1), (x2, y2), _bgr(color), thickness)


class LabelAnnotator(Annotator):
    """Writes "name 0.87 #12" (class name, confidence, track ID when there is one; each part can be left out) on a
    box of the object's colour at the top-left corner of its box: above the box where there is room, else just inside
    it, and shifted so the whole label stays in the frame. text_scale None scales the text with the frame
    (text_style); the text is black or white, whichever reads better on the colour. Labels are drawn in ascending
    confidence, so where two overlap the more confident one is on top."""

    def __init__(self, text_scale: float | None = None, show_conf: bool = True, show_id: bool = True,
                 color_by: str = "class", palette: Palette | None = None, show_name: bool = True) -> None:
        super().__init__(color_by, palette)
        _check_positive("text_scale", text_scale)
        self.text_scale = None if text_scale is None else float(text_scale)
        self.show_conf = bool(show_conf)
        self.show_id = bool(show_id)
        self.show_name = bool(show_name)

    def text(self, results: Results, i: int) -> str:
        """The label of object i ("" when every part is left out: nothing is drawn); its class name is the one a
        voting tracker settled on (boxes.track_cls), else the detector's."""
        cls = int(results.boxes.label_cls[i])
        parts = [str(results.names.get(cls, cls))] if self.show_name else []
        if self.show_conf:
            parts.append(f"{results.boxes.conf[i]:.2f}")
        if self.show_id and results.boxes.id is not None:
            parts.append(f"#{int(results.boxes.id[i])}")
        return " ".join(parts)

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        height, width = scene.shape[:2]
        if self.text_scale is None:
            scale, stroke = text_style(scene.shape)
        else:
            scale, stroke = self.text_scale, max(1, round(2 * self.text_scale))
        pad = max(1, round(3 * scale))
        boxes, colors = np.round(results.boxes.xyxy).astype(np.int64), self.colors(results)
        # the least confident first, so the most confident label is drawn last, on top; equal confidences put the
        # earlier object on top, as Ultralytics' reversed() drawing order does on its confidence-sorted results
        for i in np.argsort(-results.boxes.conf, kind="stable")[::-1].tolist():
            text = self.text(results, i)
            if not text:
                continue
            box, color = boxes[i], colors[i]
            (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, stroke)
            label_w, label_h = text_w + 2 * pad, text_h + baseline + 2 * pad
            x1, y1 = int(box[0]), int(box[1])
            top = y1 - label_h if y1 - label_h >= 0 else y1  # above the box, or inside it at the frame's top
            # shift (never shrink) into the frame; a label wider or taller than the frame keeps its top-left corner
            left = max(0, min(x1, width - label_w))
            top = max(0, min(top, height - label_h))
            cv2.rectangle(scene, (left, top), (left + label_w - 1, top + label_h - 1), _bgr(color), cv2.FILLED)
            luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
            ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
            cv2.putText(scene, text, (left + pad, top + pad + text_h), _FONT, scale, ink, stroke, cv2.LINE_AA)


class Compose(Annotator):
    """Several annotators applied in order on one copy of the frame."""

    def __init__(self, *annotators: Annotator) -> None:
        if not all(isinstance(a, Annotator) for a in annotators):
            raise ConfigError(f"compose takes annotators, got {[type(a).__name__ for a in annotators]}")
        super().__init__()
        self.annotators = annotators

    def _check(self, results: Results) -> None:
        for annotator in self.annotators:
            annotator._check(results)

    def _check_masks(self, results: Results) -> None:
        for annotator in self.annotators:
            annotator._check_masks(results)

    def _draw(self, scene: np.ndarray, results: Results) -> None:
        for annotator in self.annotators:
            annotator._draw(scene, results)


def compose(*annotators: Annotator) -> Compose:
    """One annotator that applies `annotators` in order (masks first, then lines, then labels reads best)."""
    return Compose(*annotators)


def plot(result: Results, alpha: float = 0.5, labels: bool = True, conf: bool = True, boxes: bool = True,
         masks: bool = True, color_by: str = "class", line_width: int | None = None, font_size: float | None = None,
         img: np.ndarray | None = None) -> np.ndarray:
    """A picture of `result` as Ultralytics' Results.plot draws it: a copy of `img` (default result.orig_img,
    (H, W, 3) uint8 BGR of the result's size) with masks blended at `alpha` (only inside their boxes), boxes, and on
    each box a label of the class name (`labels`) and confidence (`conf`); labels need boxes, as in Ultralytics.
    line_width: box lines in pixels; font_size: OpenCV font scale; None scales either with the frame."""
    if masks:
        result.require_host_masks("plot")
    annotators: list[Annotator] = [MaskAnnotator(alpha, color_by)] if masks else []
    if boxes:
        annotators.append(BoxAnnotator(line_width, color_by))
        if labels or conf:
            annotators.append(LabelAnnotator(font_size, show_conf=conf, show_id=labels, color_by=color_by,
                                             show_name=labels))
    return compose(*annotators).annotate(result.orig_img if img is None else img, result)


def save(result: Results, filename: str | Path | None = None, **options: Any) -> Path:
    """Writes plot(result, **options) to `filename` (default: results_<image name>, as Ultralytics), encoded by its
    suffix, atomically; returns the path."""
    if not filename:  # None or "", as Ultralytics
        filename = f"results_{Path(result.path).name if result.path else 'image.jpg'}"
    return write_image(filename, plot(result, **options))


def _gui_build() -> bool:
    """False when this OpenCV was built without a GUI (opencv-python-headless: build information "GUI: NONE")."""
    lines = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
             if line.strip().startswith("GUI:")]
    return not lines or lines[0].upper() != "NONE"


_HEADLESS = ("show() needs OpenCV's GUI build and this one is headless: pip uninstall opencv-python-headless && "
             "pip install opencv-python, or write the picture with save(filename); to watch a video live on a "
             "headless machine, `edgeseg track ... --view 8080` shows it in a browser (app.view.LiveView)")


def check_can_show() -> None:
    """OutputError unless OpenCV can open a window here: a GUI build of OpenCV and, on Linux, a display."""
    if not _gui_build():
        raise OutputError(_HEADLESS)
    # on Linux a GUI build without a display (no X11 or Wayland) aborts the whole process inside imshow: say so first
    if sys.platform.startswith("linux") and not any(os.environ.get(v)
                                                    for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise OutputError("show() needs a display and there is none ($DISPLAY is not set): write the picture with "
                          "save(filename), or watch a video live in a browser with `edgeseg track ... --view 8080`")


def show(result: Results, window: str | None = None, wait_ms: int = 0, **options: Any) -> None:
    """Shows plot(result, **options) in an OpenCV window (named `window`, default the image's path) and waits
    `wait_ms` for a key: 0 until one is pressed, 1 in a video loop. OutputError without a GUI or a display."""
    picture = plot(result, **options)
    check_can_show()
    try:
        cv2.imshow(window or result.path or "edgeseg", picture)
        cv2.waitKey(wait_ms)
    except cv2.error as e:
        if "not implemented" in str(e):
            raise OutputError(_HEADLESS) from None
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise OutputError(f"cannot show the picture: {reason}") from None

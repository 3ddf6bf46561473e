"""Letterbox geometry: source image <-> network input, exactly as Ultralytics computes it.

Ultralytics rounds with Python's round() (half to even); so does this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Where a (src_h, src_w) image lands in a (dst_h, dst_w) network input."""

    src_shape: tuple[int, int]
    dst_shape: tuple[int, int]
    resized: tuple[int, int]  # (h, w) of the image after resizing, before padding
    top: int
    left: int

    @classmethod
    def fit(cls, src_shape: tuple[int, int], dst_shape: tuple[int, int], auto: bool = False,
            stride: int = 32) -> Letterbox:
        """Scale to fit `dst_shape` keeping the aspect ratio, pad equally on both sides.

        auto=True pads only up to a multiple of `stride` (Ultralytics' minimum rectangle, used for
        dynamic-shape models); the network input is then smaller than `dst_shape`.
        """
        h, w = src_shape
        r = min(dst_shape[0] / h, dst_shape[1] / w)
        new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
        dw, dh = dst_shape[1] - new_w, dst_shape[0] - new_h
        if auto:
            dw, dh = dw % stride, dh % stride
        top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
        left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
        return cls(src_shape, (new_h + top + bottom, new_w + left + right), (new_h, new_w), top, left)

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes (n, 4) float32 in network-input pixels -> source pixels, clipped to the image (new array).

        As Ultralytics' scale_boxes: the gain is recomputed from the two shapes, per axis.
        """
        h0, w0 = self.src_shape
        pad_y, pad_x, bottom, right = content_box(self.dst_shape, self.src_shape)
        new_h, new_w = bottom - pad_y, right - pad_x
        out = np.empty_like(boxes, dtype=np.float32)
        xs, ys = out[:, 0::2], out[:, 1::2]  # views: strided slices, not fancy-indexed copies
        np.divide(boxes[:, 0::2] - np.float32(pad_x), np.float32(new_w / w0), out=xs)
        np.divide(boxes[:, 1::2] - np.float32(pad_y), np.float32(new_h / h0), out=ys)
        np.clip(xs, 0, w0, out=xs)
        np.clip(ys, 0, h0, out=ys)
        return out


def content_box(input_shape: tuple[int, int], src_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): where a (src_h, src_w) image lies in a letterboxed (in_h, in_w) network input,
    recomputed from the two shapes as Ultralytics' scale_masks and scale_coords do."""
    (h1, w1), (h0, w0) = input_shape, src_shape
    gain = min(h1 / h0, w1 / w0)
    new_h, new_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    top, left = round((h1 - new_h) / 2 - 0.1), round((w1 - new_w) / 2 - 0.1)
    return top, left, top + new_h, left + new_w


def points_to_source(points: np.ndarray, input_shape: tuple[int, int], src_shape: tuple[int, int]) -> np.ndarray:
    """(K, 2) x, y float32 points in network-input pixels -> source pixels, clipped to the image (new array).

    As Ultralytics' scale_coords on float32 outlines: the padding subtracted, then a division by each axis' gain,
    both in float32.
    """
    (h0, w0) = src_shape
    top, left, bottom, right = content_box(input_shape, src_shape)
    out = np.empty((len(points), 2), np.float32)
    out[:, 0] = ((points[:, 0] - np.float32(left)) / np.float32((right - left) / w0)).clip(0, w0)
    out[:, 1] = ((points[:, 1] - np.float32(top)) / np.float32((bottom - top) / h0)).clip(0, h0)
    return out


def mask_geometry(proto_shape: tuple[int, int], image_shape: tuple[int, int]) -> tuple[int, tuple[int, int, int, int]]:
    """How Ultralytics' process_mask_native maps prototypes to a source image.

    Returns (upsample, (top, left, bottom, right)): prototypes are first upsampled bilinearly by
    `upsample` (1, 2 or 4, the smallest that puts the letterbox padding on whole pixels), then the
    crop removes the padding, then the crop is resized bilinearly to `image_shape`.
    """
    mh, mw = proto_shape
    h, w = image_shape
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))
    upsample = 4 // math.gcd(4, pad | pad // 2)
    uh, uw = mh * upsample, mw * upsample
    gain = min(uh / h, uw / w)
    content_h, content_w = max(round(h * gain), 1), max(round(w * gain), 1)
    top, left = round((uh - content_h) / 2 - 0.1), round((uw - content_w) / 2 - 0.1)
    return upsample, (top, left, top + content_h, left + content_w)


def box_pixels(boxes: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Pixel extent [x0, y0, x1, y1) (n, 4) int64 of float xyxy boxes: the pixels p with x1 <= p < x2.

    This is Ultralytics' crop_mask rule (column r kept when r >= x1 and r < x2), so the masks cut
    to these extents equal its cropped masks.
    """
    h, w = image_shape
    px = np.ceil(boxes).astype(np.int64)
    np.clip(px[:, 0::2], 0, w, out=px[:, 0::2])
    np.clip(px[:, 1::2], 0, h, out=px[:, 1::2])
    return px

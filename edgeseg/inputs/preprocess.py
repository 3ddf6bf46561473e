"""Images -> the network's input batch, into a buffer reused from call to call."""

from __future__ import annotations

import cv2
import numpy as np

from ..kernels.preprocess import hwc_bgr_to_chw_rgb
from .letterbox import Letterbox

PAD_VALUE = 114


class Preprocessor:
    """Letterboxes BGR uint8 images into a (B, 3, H, W) batch of the model's input dtype.

    imgsz: (h, w) target size. dynamic: the model takes any H, W; images of one shape are then padded
    only to a multiple of `stride` (Ultralytics' rule). batch: a fixed batch size the model requires
    (short batches are padded with zeros), or None.
    The returned array is the internal buffer: it is overwritten by the next call.
    """

    def __init__(self, imgsz: tuple[int, int], dtype: np.dtype, stride: int = 32, dynamic: bool = False,
                 batch: int | None = None):
        self.imgsz = imgsz
        self.dtype = np.dtype(dtype)
        self.stride = stride
        self.dynamic = dynamic
        self.batch = batch
        self._work: np.ndarray | None = None  # float32, what the kernel writes
        self._out: np.ndarray | None = None  # the model's dtype, when that is not float32

    def __call__(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        auto = self.dynamic and len({im.shape for im in images}) == 1
        boxes = [Letterbox.fit(im.shape[:2], self.imgsz, auto=auto, stride=self.stride) for im in images]
        h, w = boxes[0].dst_shape
        n = max(len(images), self.batch or 0)
        work = self._buffer((n, 3, h, w))
        for k, (image, lb) in enumerate(zip(images, boxes, strict=True)):
            if image.shape[:2] != lb.resized:
                image = cv2.resize(image, lb.resized[::-1], interpolation=cv2.INTER_LINEAR)
            hwc_bgr_to_chw_rgb(image, work[k], lb.top, lb.left, PAD_VALUE)
        work[len(images) :] = 0
        if self.dtype == np.float32:
            return work, boxes
        if self._out is None or self._out.shape != work.shape:
            self._out = np.empty(work.shape, self.dtype)
        np.copyto(self._out, work, casting="same_kind")
        return self._out, boxes

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._work is None or self._work.shape != shape:
            self._work = np.empty(shape, np.float32)
        return self._work

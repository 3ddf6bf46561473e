"""Masks in the network's input frame (retina_masks=False) brought to the source image, for drawing, cutting out and
COCO output: Ultralytics' scale_masks(...) > 0.5, the way its plot() draws such masks, computed per object window."""

from __future__ import annotations

import numpy as np

from ..inputs.letterbox import content_box
from ..kernels.masks import input_masks_to_source
from ..results import Masks


def to_source(masks: Masks) -> Masks:
    """`masks` at source resolution (itself when they are there already). Each crop covers the source window its
    input crop can reach through the bilinear resize, so it may hold a zero border (or be all zero, for an object
    thinner than a source pixel)."""
    if masks.input_shape is None:
        return masks
    bounds = np.concatenate([masks.origins, masks.origins + [[c.shape[1], c.shape[0]] for c in masks.crops]],
                            axis=1).astype(np.int64).reshape(-1, 4)
    flat = np.concatenate([c.ravel() for c in masks.crops]) if len(masks) else np.zeros(0, np.uint8)
    out, offsets, windows = input_masks_to_source(flat, bounds, content_box(masks.input_shape, masks.orig_shape),
                                                  masks.orig_shape)
    crops = tuple(out[offsets[k] : offsets[k + 1]].reshape(y1 - y0, x1 - x0)
                  for k, (x0, y0, x1, y1) in enumerate(windows))
    return Masks(crops, windows[:, :2].copy(), masks.orig_shape)

"""A plain picture of Results: masks blended in their boxes, box outlines and labels (see annotate.py)."""

from __future__ import annotations

import numpy as np

from .annotate import PALETTE, BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
from .results import Results

__all__ = ["PALETTE", "plot"]


def plot(result: Results, alpha: float = 0.5, labels: bool = True) -> np.ndarray:
    """A copy of result.orig_img with masks (blended only inside their boxes), boxes and, if asked, labels."""
    result.require_host_masks("plot")
    annotators = [MaskAnnotator(alpha), BoxAnnotator()] + ([LabelAnnotator()] if labels else [])
    return compose(*annotators).annotate(result.orig_img, result)

"""COCO run-length encoding, computed from a box-sized mask crop without building the full frame."""

from __future__ import annotations

import numpy as np


def rle_counts(crop: np.ndarray, origin: tuple[int, int] | np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Uncompressed COCO RLE counts (alternating zeros, ones; column-major) of a mask crop placed at origin."""
    h, w = image_shape
    x0, y0 = int(origin[0]), int(origin[1])
    ch = crop.shape[0]
    # pad each crop column with a 0 on both ends, so every run of ones starts and ends inside the column
    cols = np.zeros((crop.shape[1], ch + 2), np.int8)
    cols[:, 1:-1] = crop.T != 0
    diff = np.diff(cols, axis=1)
    col_s, row_s = np.nonzero(diff == 1)
    col_e, row_e = np.nonzero(diff == -1)
    starts = (x0 + col_s) * h + y0 + row_s
    ends = (x0 + col_e) * h + y0 + row_e
    if len(starts) > 1:  # a run ending at a column's last row and starting the next column's first is one run
        joined = ends[:-1] == starts[1:]
        if joined.any():
            starts = np.concatenate([starts[:1], starts[1:][~joined]])
            ends = np.concatenate([ends[:-1][~joined], ends[-1:]])
    edges = np.empty(2 * len(starts) + 2, np.int64)
    edges[0], edges[-1] = 0, h * w
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    return np.diff(edges)


def compress_counts(counts: np.ndarray) -> str:
    """pycocotools' compressed string form of RLE counts (LEB128-like, 5 bits a character)."""
    chars = []
    for i, x in enumerate(counts.tolist()):
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def encode_rle(crop: np.ndarray, origin, image_shape: tuple[int, int]) -> dict:
    """{'size': [H, W], 'counts': str}, as pycocotools.mask.encode gives for the full-frame mask."""
    return {"size": [int(image_shape[0]), int(image_shape[1])],
            "counts": compress_counts(rle_counts(crop, origin, image_shape))}

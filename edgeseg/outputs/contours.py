"""Object outlines: polygons traced on each object's box-sized mask crop, never on a full frame.

OpenCV's border following (cv2.findContours, RETR_EXTERNAL, CHAIN_APPROX_SIMPLE) is what
Ultralytics uses for `masks.xy`; run on a crop with the crop's offset it returns the same points,
in the same order, as on the full-frame mask, because raster order inside a rectangle is the
frame's raster order restricted to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import ConfigError
from ..inputs.letterbox import points_to_source

if TYPE_CHECKING:
    from ..results import Masks

STRATEGIES = ("largest", "all")


def check_strategy(strategy: str) -> None:
    """ConfigError naming the valid strategies unless `strategy` is one of them."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ConfigError(f"contour strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")


def outer_contours(crop: np.ndarray, origin: tuple[int, int] | np.ndarray) -> list[np.ndarray]:
    """Every outer contour of a mask crop placed at origin (x0, y0): a list of (K, 2) int32 frame pixels."""
    if crop.size == 0:
        return []
    found, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                offset=(int(origin[0]), int(origin[1])))
    return [c.reshape(-1, 2) for c in found]


def object_polygon(crop: np.ndarray, origin: tuple[int, int] | np.ndarray, strategy: str = "largest") -> np.ndarray:
    """One object's outline as a (K, 2) float32 polygon in frame pixels; (0, 2) for an empty mask.

    strategy "largest": the outer contour enclosing the largest area (ties: the one found first).
    "all": every outer contour joined into one polygon by thin bridges between their closest
    points, exactly as Ultralytics' masks2segments(strategy="all") joins them. ConfigError for another strategy.
    """
    check_strategy(strategy)
    contours = outer_contours(crop, origin)
    if not contours:
        return np.zeros((0, 2), np.float32)
    if len(contours) == 1:
        return contours[0].astype(np.float32)
    if strategy == "largest":
        # a contour of 1 or 2 points encloses no area: rank those by their point count behind all others
        areas = [cv2.contourArea(c) for c in contours]
        best = max(range(len(contours)), key=lambda k: (areas[k], len(contours[k]) if areas[k] == 0 else 0, -k))
        return contours[best].astype(np.float32)
    return join_contours(contours).astype(np.float32)


def object_outlines(masks: Masks, strategy: str = "all") -> list[np.ndarray]:
    """Every object's outline (object_polygon) in source pixels: masks in the network's input frame are traced there
    and scaled to the source as Ultralytics' masks.xy scales them. ConfigError for a bad strategy, even with none."""
    check_strategy(strategy)
    outlines = [object_polygon(crop, origin, strategy) for crop, origin in zip(masks.crops, masks.origins, strict=True)]
    if masks.input_shape is None:
        return outlines
    return [points_to_source(p, masks.input_shape, masks.orig_shape) for p in outlines]


def _closest_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices (i, j) of the closest points a[i], b[j]; the first such pair in row-major order on ties."""
    d = ((a[:, None, :].astype(np.int64) - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(i), int(j)


def join_contours(contours: list[np.ndarray]) -> np.ndarray:
    """Chains contours c0, c1, ... into one closed walk joined at the closest points of neighbours.

    The walk goes out along c0 to c1, around part of each middle contour to the next one, all the
    way round the last one, and back through the remaining parts of the middle contours, so every
    contour is traversed once and each bridge twice (a zero-width cut). Point order, start points
    and the closing repeats follow Ultralytics' merge_multi_segment so that the polygons are equal.
    """
    n = len(contours)
    # links[k]: where contour k meets contour k - 1 and/or contour k + 1, in that order
    links: list[list[int]] = [[] for _ in range(n)]
    for k in range(1, n):
        i, j = _closest_pair(contours[k - 1], contours[k])
        links[k - 1].append(i)
        links[k].append(j)
    loops, outward = [], []
    for k, (contour, link) in enumerate(zip(contours, links, strict=True)):
        if len(link) == 2 and link[0] > link[1]:
            # walk a middle contour backwards so the way to the next contour comes first
            contour = contour[::-1]
            link = [len(contour) - 1 - v for v in link]
        loop = np.concatenate([contour[link[0]:], contour[: link[0] + 1]])  # starts and ends at the entry point
        loops.append(loop)
        outward.append(loop if k in (0, n - 1) else loop[: link[1] - link[0] + 1])
    back = [loops[k][abs(links[k][1] - links[k][0]):] for k in range(n - 2, 0, -1)]
    return np.concatenate(outward + back)

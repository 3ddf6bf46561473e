"""A plain picture of Results: masks blended in their boxes, box outlines and labels."""

from __future__ import annotations

import cv2
import numpy as np

from .results import Results

# one fixed palette (BGR), indexed by class
PALETTE = np.array([
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72), (23, 204, 146),
    (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100),
    (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
], np.uint8)  # fmt: skip


def plot(result: Results, alpha: float = 0.5, labels: bool = True) -> np.ndarray:
    """A copy of result.orig_img with the objects drawn; each mask is blended only inside its box."""
    image = result.orig_img.copy()
    scale = max(image.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    for k in range(len(result)):
        color = PALETTE[int(result.boxes.cls[k]) % len(PALETTE)]
        crop, (x0, y0) = result.masks.crops[k], result.masks.origins[k]
        region = image[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
        inside = crop.astype(bool)
        region[inside] = (region[inside] * (1 - alpha) + color * alpha).astype(np.uint8)
        x1, y1, x2, y2 = (int(round(v)) for v in result.boxes.xyxy[k])
        cv2.rectangle(image, (x1, y1), (x2, y2), tuple(int(c) for c in color), thickness)
        if labels:
            text = f"{result.names.get(int(result.boxes.cls[k]), result.boxes.cls[k])} {result.boxes.conf[k]:.2f}"
            font_scale = 0.5 * scale
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
            ty = y1 - 2 if y1 - th - 4 >= 0 else y1 + th + 2
            cv2.rectangle(image, (x1, ty - th - 2), (x1 + tw, ty + 2), tuple(int(c) for c in color), -1)
            cv2.putText(image, text, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image

"""Camera motion between consecutive video frames (global motion compensation, GMC), for BoT-SORT.

    motion = CameraMotion("sparseOptFlow")
    for frame in frames:
        affine = motion.apply(frame)   # (2, 3) float64: previous frame's pixel (x, y, 1) -> this frame's

The methods are Ultralytics' (trackers/utils/gmc.py), with the same OpenCV calls and settings, so both give the
same affine on the same frames. Both work on the frame in gray, shrunk `downscale` times:
- sparseOptFlow: corners of the previous frame (goodFeaturesToTrack) followed into this one by pyramidal
  Lucas-Kanade optical flow, and a rotation, scale and shift fitted to the pairs by RANSAC
  (estimateAffinePartial2D). About 10 ms a 1080p frame on two CPU cores.
- ecc: the rotation and shift that best align the whole previous frame with this one (findTransformECC).
  About 50 ms a 1080p frame on a smooth pan, and up to 10 times more when the camera jumps.
- none (or null): no camera motion, the identity.
Ultralytics' orb and sift are not here; asking for them is a ConfigError.

The first frame, a frame too plain to follow (no corners, too few tracked points, no fit) and the first frame after
a change of frame size give the identity; a change of size also starts the estimate again, with a warning.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("sparseOptFlow", "ecc", "none")
# Ultralytics' corner detector settings for sparseOptFlow; 400 corners over-determine a 4-parameter motion
CORNERS = {"maxCorners": 400, "qualityLevel": 0.01, "minDistance": 0, "blockSize": 3, "useHarrisDetector": False,
           "k": 0.04}
# ECC: Ultralytics' rigid motion and stopping rule (5000 iterations or a step below 1e-6)
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 5000, 1e-6)
MIN_POINTS = 5  # point pairs a sparseOptFlow fit needs


def check_method(method: str | None, where: str = "gmc_method") -> str | None:
    """The GMC method a setting names: "sparseOptFlow", "ecc", or None for none / "none" / "None"."""
    if method is None or method in ("none", "None"):
        return None
    if method in METHODS:
        return method
    hint = " (Ultralytics has it; edgeseg does not)" if method in ("orb", "sift") else ""
    raise ConfigError(f"{where} {method!r} is not supported{hint}: use one of {', '.join(METHODS)}, or null")


def _identity() -> np.ndarray:
    return np.eye(2, 3)


class CameraMotion:
    """The camera's motion from one frame to the next, frame after frame; one per video (or reset() between videos).

    `method`: see METHODS; `downscale`: the frame is shrunk this many times before the estimate (Ultralytics: 2).
    """

    def __init__(self, method: str | None = "sparseOptFlow", downscale: int = 2):
        if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
            raise ConfigError(f"downscale must be a positive integer, got {downscale!r}")
        self.method = check_method(method)
        self.downscale = downscale
        self.reset()

    def reset(self) -> None:
        """Forgets the previous frame: the next one is a first frame again."""
        self._shape: tuple[int, int] | None = None
        self._previous: np.ndarray | None = None  # the last frame, gray and shrunk
        self._corners: np.ndarray | None = None  # sparseOptFlow: its corners (K, 1, 2) float32, None if it had none

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The affine (2, 3) float64 that carries the previous frame's pixels onto `frame`'s, a (H, W, 3) BGR or
        (H, W) gray uint8 image; the identity for the first frame. `frame` becomes the previous frame."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or not (
                frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
            got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"camera motion needs a (H, W, 3) BGR or (H, W) gray uint8 frame, got {got}")
        if self.method is None:
            return _identity()
        shape = frame.shape[:2]
        if self._shape is not None and shape != self._shape:
            # the previous frame cannot be compared with this one: this frame starts the estimate again
            log.warning("camera motion compensation: the frame size changed from %dx%d to %dx%d; starting again "
                        "from this frame", self._shape[1], self._shape[0], shape[1], shape[0])
            self.reset()
        self._shape = shape
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if self.method == "ecc":
            return self._ecc(gray)
        return self._sparse_flow(gray)

    def _shrunk(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        return cv2.resize(gray, (w // self.downscale, h // self.downscale)) if self.downscale > 1 else gray

    def _sparse_flow(self, gray: np.ndarray) -> np.ndarray:
        small = self._shrunk(gray)
        corners = cv2.goodFeaturesToTrack(small, mask=None, **CORNERS)
        previous, previous_corners = self._previous, self._corners
        self._previous, self._corners = small, corners
        if previous is None or previous_corners is None:
            return _identity()
        moved, found, _ = cv2.calcOpticalFlowPyrLK(previous, small, previous_corners, None)
        found = found.ravel().astype(bool)
        if found.sum() < MIN_POINTS:
            log.debug("camera motion compensation: %d points followed, too few for a fit", found.sum())
            return _identity()
        affine = cv2.estimateAffinePartial2D(previous_corners[found], moved[found], method=cv2.RANSAC)[0]
        if affine is None:
            log.debug("camera motion compensation: no affine fits the followed points")
            return _identity()
        affine[:, 2] *= self.downscale  # the shift was measured in shrunk pixels
        return affine

    def _ecc(self, gray: np.ndarray) -> np.ndarray:
        small = self._shrunk(cv2.GaussianBlur(gray, (3, 3), 1.5)) if self.downscale > 1 else gray
        previous, self._previous = self._previous, small
        if previous is None:
            return _identity()
        try:
            _, affine = cv2.findTransformECC(previous, small, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN,
                                             ECC_CRITERIA, None, 1)
        except cv2.error as e:  # e.g. no convergence on a plain frame: no motion seen, as in Ultralytics
            log.warning("camera motion compensation: ECC found no alignment (%s); assuming a still camera",
                        str(e).strip().splitlines()[-1])
            return _identity()
        # the shift back to full-size pixels, scaled as Ultralytics scales it (in float32)
        affine[:, 2] *= (gray.shape[1] / small.shape[1], gray.shape[0] / small.shape[0])
        return affine.astype(np.float64)

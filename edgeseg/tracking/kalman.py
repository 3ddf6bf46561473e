"""Constant-velocity Kalman filters on boxes, as ByteTrack and BoT-SORT use them, vectorised over tracks.

ByteTrack measures a box as (cx, cy, a, h): centre, aspect a = w / h and height (initiate, predict,
update). The state adds their velocities: mean (N, 8) float64, covariance (N, 8, 8) float64. Every
noise level is proportional to the box height (ByteTrack's weights), except the aspect's, which is
fixed: boxes keep their shape.

BoT-SORT measures (cx, cy, w, h) instead (the *_xywh functions), with noise proportional to the width
for cx and w and to the height for cy and h, and its tracks can follow the camera (warp_xywh).
"""

from __future__ import annotations

import numpy as np

POSITION_WEIGHT = 1.0 / 20
VELOCITY_WEIGHT = 1.0 / 160
# Standard deviations of the aspect: initial, process (position and velocity) and measurement noise.
ASPECT_STD = (1e-2, 1e-2, 1e-5, 1e-1)

_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)  # x_{t+1} = x_t + v_t, one frame per step
_DIAG = np.arange(8)


def _diagonal(std: np.ndarray) -> np.ndarray:
    """(N, K) standard deviations -> (N, K, K) diagonal covariances."""
    n, k = std.shape
    out = np.zeros((n, k, k))
    out[:, _DIAG[:k], _DIAG[:k]] = np.square(std)
    return out


def initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from measurements (N, 4): mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
    xyah = np.asarray(xyah, np.float64).reshape(-1, 4)
    h = xyah[:, 3]
    pos, vel = 2 * POSITION_WEIGHT * h, 10 * VELOCITY_WEIGHT * h
    std = np.stack([pos, pos, np.full_like(h, ASPECT_STD[0]), pos, vel, vel, np.full_like(h, ASPECT_STD[2]), vel], 1)
    return np.concatenate([xyah, np.zeros_like(xyah)], 1), _diagonal(std)


def predict(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: mean (N, 8), covariance (N, 8, 8) -> the predicted ones (new arrays)."""
    h = mean[:, 3]
    pos, vel = POSITION_WEIGHT * h, VELOCITY_WEIGHT * h
    std = np.stack([pos, pos, np.full_like(h, ASPECT_STD[1]), pos, vel, vel, np.full_like(h, ASPECT_STD[2]), vel], 1)
    return mean @ _MOTION.T, _MOTION @ covariance @ _MOTION.T + _diagonal(std)


def update(mean: np.ndarray, covariance: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrects states (N, 8), (N, 8, 8) with their measurements (N, 4); returns new arrays."""
    h = mean[:, 3]
    pos = POSITION_WEIGHT * h
    return _corrected(mean, covariance, xyah, np.stack([pos, pos, np.full_like(h, ASPECT_STD[3]), pos], 1))


def _corrected(mean: np.ndarray, covariance: np.ndarray, measured: np.ndarray,
               noise_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman correction of states (N, 8), (N, 8, 8) by measurements (N, 4) of the first four state variables
    whose noise has standard deviations `noise_std` (N, 4)."""
    innovation_cov = covariance[:, :4, :4] + _diagonal(noise_std)
    # gain = P H^T S^-1, solved rather than inverted; S and P are symmetric
    gain = np.swapaxes(np.linalg.solve(innovation_cov, np.swapaxes(covariance[:, :, :4], 1, 2)), 1, 2)
    innovation = np.asarray(measured, np.float64) - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = covariance - gain @ innovation_cov @ np.swapaxes(gain, 1, 2)
    return new_mean, new_cov


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) states or measurements -> (N, 4) float32 boxes x1, y1, x2, y2."""
    xy, h = xyah[:, :2], xyah[:, 3:4]
    wh = np.concatenate([xyah[:, 2:3] * h, h], 1)
    top_left = xy - wh / 2
    return np.concatenate([top_left, top_left + wh], 1).astype(np.float32)


def initiate_xywh(xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from measurements (N, 4) (cx, cy, w, h): mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    size = np.tile(xywh[:, 2:], 2)  # w, h, w, h: the scale of each variable's noise
    std = np.concatenate([2 * POSITION_WEIGHT * size, 10 * VELOCITY_WEIGHT * size], 1)
    return np.concatenate([xywh, np.zeros_like(xywh)], 1), _diagonal(std)


def predict_xywh(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for (cx, cy, w, h) states (N, 8), (N, 8, 8) -> the predicted ones (new arrays)."""
    size = np.tile(mean[:, 2:4], 2)
    std = np.concatenate([POSITION_WEIGHT * size, VELOCITY_WEIGHT * size], 1)
    return mean @ _MOTION.T, _MOTION @ covariance @ _MOTION.T + _diagonal(std)


def update_xywh(mean: np.ndarray, covariance: np.ndarray, xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrects (cx, cy, w, h) states (N, 8), (N, 8, 8) with their measurements (N, 4); returns new arrays."""
    return _corrected(mean, covariance, xywh, POSITION_WEIGHT * np.tile(mean[:, 2:4], 2))


def warp_xywh(mean: np.ndarray, covariance: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cx, cy, w, h) states (N, 8), (N, 8, 8) carried by the camera's motion, a (2, 3) affine from the previous frame
    to this one: the centre and its velocity turn and scale with the affine's 2x2 part (the centre also shifts), the
    size and its velocity with that part's absolute values, so that a box never gets a negative size. New arrays."""
    affine = np.asarray(affine, np.float64)
    linear = affine[:, :2]
    block = np.kron(np.eye(4), linear)
    block[2:4, 2:4] = block[6:8, 6:8] = np.abs(linear)
    # the products in Ultralytics' order and memory layout (multi_gmc), so that the states agree to the last bit
    new_mean = np.matmul(block, mean[..., None])[..., 0]
    new_mean[:, :2] += affine[:, 2]
    return new_mean, np.matmul(np.matmul(block, covariance), np.ascontiguousarray(block.T))


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, >=4) (cx, cy, w, h) states or measurements -> (N, 4) float32 boxes x1, y1, x2, y2."""
    top_left = xywh[:, :2] - xywh[:, 2:4] / 2
    return np.concatenate([top_left, top_left + xywh[:, 2:4]], 1).astype(np.float32)

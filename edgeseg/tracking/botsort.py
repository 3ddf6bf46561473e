"""BoT-SORT: ByteTrack that follows the camera; Ultralytics' default tracker (botsort.yaml).

    tracker = BotSort(load_botsort_config("botsort.yaml"))   # shipped in edgeseg/configs; or a path
    for r in seg(frames):
        r = tracker.update(r)      # the detections that belong to a track, with r.boxes.id
        r.boxes.id                 # (N,) int64, the same object keeps its id from frame to frame

The algorithm and its bookkeeping are those of Ultralytics' BOTSORT without ReID (its default), so that both give
the same ids on the same detections and frames. It is ByteTrack (bytetrack.py) with two changes:
- the Kalman filter follows each box's centre, width and height (cx, cy, w, h) rather than its aspect, and a track
  out of sight stops changing both its width and its height;
- after the prediction, every track is carried by the camera's motion between the last frame and this one, an affine
  estimated from the frames themselves (gmc.py): a panning camera moves boxes the filter cannot foresee.

ReID (matching by appearance) is not here: with_reid: true is a ConfigError. proximity_thresh and appearance_thresh
only gate the ReID distance, so, as in Ultralytics without ReID, they are checked and kept but change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import find_settings_file, read_yaml
from ..errors import ConfigError
from ..results import Results
from . import kalman
from .bytetrack import Tracker, _AssociationConfig, _measurements, _StateModel, _Track
from .gmc import CameraMotion, check_method


@dataclass(frozen=True)
class BotSortConfig(_AssociationConfig):
    """BoT-SORT settings: ByteTrack's (TrackerConfig) and the keys below; the defaults are Ultralytics'
    (edgeseg/configs/botsort.yaml)."""

    TRACKER_TYPE: ClassVar[str] = "botsort"

    gmc_method: str | None = "sparseOptFlow"  # camera motion: sparseOptFlow, ecc or none (gmc.py); none -> None
    proximity_thresh: float = 0.5  # ReID only: the least IoU at which appearance may match a track
    appearance_thresh: float = 0.8  # ReID only: the least appearance similarity of a match
    with_reid: bool = False  # matching by appearance: not supported, must be false
    model: str = "auto"  # ReID only: the appearance model ("auto": the detector's own features)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "gmc_method", check_method(self.gmc_method))
        for name in ("proximity_thresh", "appearance_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.with_reid, bool):
            raise ConfigError(f"with_reid must be true or false, got {self.with_reid!r}")
        if self.with_reid:
            raise ConfigError("with_reid: true is not supported: edgeseg's BoT-SORT has no ReID (appearance) model; "
                              "set with_reid: false")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be the name or path of a ReID model, or auto, got {self.model!r}")


def load_botsort_config(path: str | Path) -> BotSortConfig:
    """Reads a YAML BoT-SORT file: a path, or the bare name of a file shipped in edgeseg/configs ("botsort.yaml",
    as Ultralytics' tracker="botsort.yaml"). Unknown keys are an error."""
    path = find_settings_file(path, "tracker config")
    return BotSortConfig.from_mapping(read_yaml(path, "tracker config"), where=str(path))


def _measurements_xywh(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes (N, 4) float32 -> the boxes the tracker compares (N, 4) and measurements (cx, cy, w, h) (N, 4),
    float32, through top-left/size form as in Ultralytics (see bytetrack._measurements)."""
    compared, xyah = _measurements(xyxy)
    # the size as the detector's corners give it; the compared box's corners would round it a second time
    return compared, np.concatenate([xyah[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)


class BotSort(Tracker):
    """BoT-SORT over a video's Results, with the public API of bytetrack.Tracker; one per video (or reset()).

    `frame_rate` scales the buffer: a lost track is removed after track_buffer * frame_rate / 30 frames.
    """

    _config_type = BotSortConfig
    _config_loader = "load_botsort_config"
    _model = _StateModel(_measurements_xywh, kalman.initiate_xywh, kalman.predict_xywh, kalman.update_xywh,
                         kalman.xywh_to_xyxy, still_when_lost=(6, 7))

    def __init__(self, config: BotSortConfig | None = None, frame_rate: float = 30):
        super().__init__(config, frame_rate)

    def reset(self) -> None:
        """Forgets every track and the last frame; ids start at 1 again."""
        super().reset()
        self._camera = CameraMotion(self.config.gmc_method)

    def _compensate(self, tracks: list[_Track], results: Results) -> None:
        if self.config.gmc_method is None:
            return
        affine = self._camera.apply(results.orig_img)  # every frame, tracks or not: it is the next one's previous
        if not tracks or np.array_equal(affine, np.eye(2, 3)):
            return
        mean, cov = kalman.warp_xywh(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), affine)
        for t, m, c in zip(tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

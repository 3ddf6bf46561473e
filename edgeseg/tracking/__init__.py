"""Multi-object tracking of Results across video frames: ByteTrack with a Kalman filter (see bytetrack.py)."""

from .bytetrack import Tracker, TrackerConfig, load_tracker_config

__all__ = ["Tracker", "TrackerConfig", "load_tracker_config"]

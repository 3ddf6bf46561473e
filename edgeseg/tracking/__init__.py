"""Multi-object tracking of Results across video frames.

MaskTracker (masktrack.py, the default): ByteTrack's association with one candidate per object when the detector
hesitates between classes, mask IoU beside box IoU, and a class each track settles on. Tracker (bytetrack.py): the
exact Ultralytics ByteTrack. BotSort (botsort.py): the exact Ultralytics BoT-SORT, with camera-motion compensation.
trackers.py picks one by a tracker file's tracker_type.
"""

from .botsort import BotSort, BotSortConfig, load_botsort_config
from .bytetrack import Tracker, TrackerConfig, load_tracker_config
from .masktrack import MaskTrackConfig, MaskTracker, load_masktrack_config
from .trackers import DEFAULT_TRACKER, TRACKERS, is_tracker_config, load_config, make_tracker

__all__ = ["DEFAULT_TRACKER", "TRACKERS", "BotSort", "BotSortConfig", "MaskTrackConfig", "MaskTracker", "Tracker",
           "TrackerConfig", "is_tracker_config", "load_botsort_config", "load_config", "load_masktrack_config",
           "load_tracker_config", "make_tracker"]

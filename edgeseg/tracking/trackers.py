"""The trackers by name: a tracker file's `tracker_type` picks the settings class and the tracker that reads them.

    config = load_config("botsort.yaml")        # a path, or the bare name of a file shipped in edgeseg/configs
    tracker = make_tracker(config)              # BotSort here; ByteTrack for bytetrack files, MaskTracker for masktrack

Ultralytics' files (bytetrack.yaml, botsort.yaml) name their tracker the same way, so one file serves both.
"""

from __future__ import annotations

import os
from typing import Any, Union

from ..config import find_settings_file, read_yaml
from ..errors import ConfigError
from .botsort import BotSort, BotSortConfig
from .bytetrack import Tracker, TrackerConfig
from .masktrack import MaskTrackConfig, MaskTracker

AnyTrackerConfig = Union[TrackerConfig, BotSortConfig, MaskTrackConfig]  # noqa: UP007
AnyTracker = Union[Tracker, BotSort, MaskTracker]  # noqa: UP007

# tracker_type -> (settings, tracker)
TRACKERS: dict[str, tuple[type, type]] = {
    "masktrack": (MaskTrackConfig, MaskTracker),
    "bytetrack": (TrackerConfig, Tracker),
    "botsort": (BotSortConfig, BotSort),
}
# what Segmenter.track and `edgeseg track` follow objects with when no tracker is named
DEFAULT_TRACKER = "masktrack.yaml"


def load_config(path: str | os.PathLike) -> AnyTrackerConfig:
    """The settings a tracker file holds, of the class its `tracker_type` names. ConfigError for a missing or unknown
    tracker_type, and for keys, types or values that tracker does not take."""
    found = find_settings_file(path, "tracker config")
    data = read_yaml(found, "tracker config")
    kind = data.get("tracker_type")
    if not isinstance(kind, str) or kind not in TRACKERS:  # a list or a mapping there is no name either
        known = ", ".join(TRACKERS)
        what = "has no tracker_type" if kind is None else f"has tracker_type {kind!r}"
        raise ConfigError(f"tracker config {found} {what}: give one of {known}")
    return TRACKERS[kind][0].from_mapping(data, where=str(found))


def make_tracker(config: Any, frame_rate: float = 30) -> AnyTracker:
    """A new tracker for `config`: a settings object of one of TRACKERS, or a tracker file (see load_config)."""
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    for settings, tracker in TRACKERS.values():
        if type(config) is settings:
            return tracker(config, frame_rate)
    names = ", ".join(s.__name__ for s, _ in TRACKERS.values())
    raise ConfigError(f"a tracker is made from a tracker file or one of {names}, got {type(config).__name__}")


def is_tracker_config(value: Any) -> bool:
    """True for a settings object of one of TRACKERS."""
    return any(type(value) is settings for settings, _ in TRACKERS.values())


def tracker_type(config: AnyTrackerConfig) -> str:
    """The tracker_type of a settings object."""
    return next(kind for kind, (settings, _) in TRACKERS.items() if type(config) is settings)


__all__ = ["DEFAULT_TRACKER", "TRACKERS", "is_tracker_config", "load_config", "make_tracker", "tracker_type"]


"""Trackers by name: a tracker file's tracker_type picks the tracker, for Segmenter.track, `edgeseg track` and
make_tracker alike; a file that names none, or an unknown one, is a one-line ConfigError."""

from __future__ import annotations

import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.app.synthetic import panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.tracking import (
    DEFAULT_TRACKER,
    BotSort,
    BotSortConfig,
    MaskTrackConfig,
    MaskTracker,
    Tracker,
    TrackerConfig,
    load_config,
    make_tracker,
)


@pytest.mark.parametrize("name, settings, tracker", [
    ("bytetrack.yaml", TrackerConfig, Tracker),
    ("botsort.yaml", BotSortConfig, BotSort),
    ("masktrack.yaml", MaskTrackConfig, MaskTracker),
])
def test_the_shipped_files_make_their_trackers(name, settings, tracker):
    config = load_config(name)
    assert type(config) is settings and config == settings()
    assert type(make_tracker(config)) is tracker and type(make_tracker(name)) is tracker


def test_the_default_is_the_mask_tracker():
    assert DEFAULT_TRACKER == "masktrack.yaml"
    seg = Segmenter(demo_model_path())
    frames = list(panning_frames(320, 256, 5, 3, seed=2))
    for frame in frames:
        (r,) = seg.track(frame, persist=True)
    assert type(seg._tracker) is MaskTracker and r.boxes.track_cls is not None and len(r)


@pytest.mark.parametrize("text, words", [
    ("track_buffer: 30\n", "has no tracker_type: give one of masktrack, bytetrack, botsort"),
    ("tracker_type: ocsort\n", "has tracker_type 'ocsort'"),
    ("tracker_type: [botsort]\n", "has tracker_type ['botsort']"),
    ("tracker_type: botsort\nmatch_thresh: 2\n", "match_thresh must be a number in [0, 1]"),
    ("tracker_type: bytetrack\ngmc_method: none\n", "gmc_method"),
])
def test_bad_files_say_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "tracker.yaml"
    path.write_text(text)
    for make in (load_config, make_tracker, lambda p: Segmenter(demo_model_path()).track(
            next(panning_frames(64, 64, 1, 1)), tracker=p)):
        with pytest.raises(ConfigError) as error:
            make(path)
        assert words in str(error.value) and "\n" not in str(error.value)


def test_settings_objects_are_taken_and_anything_else_refused():
    assert type(make_tracker(BotSortConfig(track_buffer=10))) is BotSort
    with pytest.raises(ConfigError, match="got dict"):
        make_tracker({"tracker_type": "botsort"})
    with pytest.raises(ConfigError, match="tracker must be a tracker file"):
        Segmenter(demo_model_path()).track(next(panning_frames(64, 64, 1, 1)), tracker=3)

"""Settings files shipped in the package (edgeseg/configs) and found by bare name from any folder, as Ultralytics finds
its own: tracker="bytetrack.yaml", load_tracker_config("bytetrack.yaml"), load_config("default.yaml")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edgeseg import ConfigError, PredictConfig, Segmenter, load_config
from edgeseg.app.synthetic import make_scene
from edgeseg.assets import demo_model_path
from edgeseg.config import SHIPPED_CONFIGS, shipped_configs
from edgeseg.tracking import TrackerConfig, load_tracker_config
from tests.helpers.common import REPO, edgeseg_cli

SHIPPED = ["botsort.yaml", "bytetrack.yaml", "default.yaml", "masktrack.yaml"]
LISTED = r"\(" + ", ".join(SHIPPED) + r"\)"


def test_the_files_ship_inside_the_package():
    assert shipped_configs() == SHIPPED
    assert SHIPPED_CONFIGS.parent == Path(sys.modules["edgeseg"].__file__).resolve().parent
    # a non-editable install carries only what package-data names
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "edgeseg.configs" in setuptools["packages"]
    patterns = setuptools["package-data"]["edgeseg.configs"]
    assert sorted({p.name for pattern in patterns for p in SHIPPED_CONFIGS.glob(pattern)}) == SHIPPED


def test_bare_names_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_tracker_config("bytetrack.yaml") == TrackerConfig()
    assert load_tracker_config(Path("bytetrack.yaml")) == TrackerConfig()
    assert load_config("default.yaml") == PredictConfig()


def test_a_file_of_that_name_here_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bytetrack.yaml").write_text("track_buffer: 60\n")
    Path("default.yaml").write_text("conf: 0.5\n")
    assert load_tracker_config("bytetrack.yaml").track_buffer == 60
    assert load_config("default.yaml").conf == 0.5


def test_an_unknown_bare_name_lists_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for load in (load_tracker_config, load_config):
        with pytest.raises(ConfigError, match=r"ocsort.yaml is neither a file here nor one shipped with edgeseg "
                                              + LISTED) as error:
            load("ocsort.yaml")
        assert "\n" not in str(error.value)


def test_a_missing_path_is_not_looked_up_among_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="tracker config file not found: sub/bytetrack.yaml"):
        load_tracker_config("sub/bytetrack.yaml")
    with pytest.raises(ConfigError, match="config file not found: ./default.yaml"):
        load_config("./default.yaml")
    with pytest.raises(ConfigError, match="must be a path or the name of a shipped file"):
        load_config("")


def test_segmenter_track_finds_the_shipped_tracker_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = make_scene(480, 320, 6, seed=1).image
    (r,) = Segmenter(demo_model_path()).track(image, tracker="bytetrack.yaml")
    assert len(r) and sorted(r.boxes.id.tolist()) == list(range(1, len(r) + 1))
    with pytest.raises(ConfigError, match="shipped with edgeseg"):
        Segmenter(demo_model_path()).track(image, tracker="ocsort.yaml")


def test_a_fresh_process_in_another_folder_finds_them(tmp_path):
    code = ("from edgeseg import load_config; from edgeseg.tracking import load_tracker_config; "
            "print(load_config('default.yaml').conf, load_tracker_config('bytetrack.yaml').track_buffer)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.25", "30"]


def test_the_command_takes_a_bare_config_name(tmp_path):
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), make_scene(480, 320, 6, seed=2).image)
    done = edgeseg_cli("predict", "--model", demo_model_path(), "--source", image, "--config", "default.yaml",
                       "--quiet", "--save-json", tmp_path / "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = edgeseg_cli("predict", "--model", demo_model_path(), "--source", image, "--config", "nothing.yaml",
                       cwd=tmp_path)
    assert done.returncode == 1 and f"shipped with edgeseg ({', '.join(SHIPPED)})" in done.stderr
    assert len(done.stderr.splitlines()) == 1

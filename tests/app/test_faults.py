"""The hostile-user battery of the command line (issue 13): outputs that would land on inputs, bad files mid-run,
binary settings, unreachable paths, SIGTERM. For every case: the error's type or one line and exit code, and that no
file outside the output folder changed and nothing half-written or temporary remains."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import ModelNotFoundError, OutputError, Segmenter
from edgeseg.app.synthetic import make_scene
from edgeseg.assets import demo_model_path
from edgeseg.outputs.video_writer import VideoWriter
from tests.helpers.common import edgeseg_cli

DEMO = demo_model_path()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones included) -> its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp" in p.name]


@pytest.fixture()
def run(tmp_path):
    """A run's folder with a model, a config and three images in it; `check()` asserts that none of them changed."""
    shutil.copy(DEMO, tmp_path / "m.onnx")
    (tmp_path / "settings.yaml").write_text("conf: 0.25\n")
    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        cv2.imwrite(str(images / f"{k:05d}.jpg"), make_scene(320, 240, 3, seed=k).image)
    before = snapshot(tmp_path)

    class Run:
        folder, model, config = tmp_path, tmp_path / "m.onnx", tmp_path / "settings.yaml"
        images = tmp_path / "images"

        @staticmethod
        def check(outputs: Path | None = None) -> None:
            after = {k: v for k, v in snapshot(tmp_path).items()
                     if outputs is None or not (tmp_path / k).resolve().is_relative_to(outputs.resolve())}
            assert after == before, "an input changed or a stray file appeared"
            assert no_temporaries(tmp_path)

    return Run


def one_error_line(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("edgeseg: error: ") and "Traceback" not in done.stderr, done.stderr
    assert all(w in lines[-1] for w in words), lines[-1]
    return lines[-1]


@pytest.mark.parametrize("target", ["m.onnx", "settings.yaml", "images/00001.jpg"])
def test_save_json_never_replaces_an_input(run, target):
    done = edgeseg_cli("predict", "--model", run.model, "--config", run.config, "--source", run.images,
                       "--save-json", run.folder / target, cwd=run.folder)
    one_error_line(done, "--save-json", "is an input of this run")
    run.check()


def test_save_json_through_another_spelling_of_an_input(run):
    (run.folder / "link.onnx").symlink_to(run.model)
    done = edgeseg_cli("predict", "--model", run.model, "--source", run.images, "--save-json", "link.onnx",
                       cwd=run.folder)
    one_error_line(done, "is an input of this run")
    (run.folder / "link.onnx").unlink()
    run.check()


def test_isolate_into_a_folder_holding_its_inputs_is_refused(run):
    # a cut-out of an earlier run sits among the images: it is an input now, and a cut-out could be named like it
    cutout = run.images / "00000_circle-0.png"
    cv2.imwrite(str(cutout), np.zeros((5, 5, 4), np.uint8))
    before = snapshot(run.images)
    done = edgeseg_cli("isolate", "--model", run.model, "--source", run.images, "--save-dir", run.images)
    one_error_line(done, "--save-dir", "holds the input", "00000")
    assert snapshot(run.images) == before


def test_track_isolate_dir_holding_its_inputs_is_refused(run):
    before = snapshot(run.images)
    done = edgeseg_cli("track", "--model", run.model, "--source", run.images, "--isolate-dir", run.folder)
    one_error_line(done, "--isolate-dir", "holds the input")
    assert snapshot(run.images) == before


def test_track_save_over_its_config_is_refused(run, tmp_path):
    video = tmp_path / "clip.avi"
    with VideoWriter(video, 10, (160, 120)) as out:
        for k in range(3):
            out.write(make_scene(160, 120, 2, seed=k).image)
    done = edgeseg_cli("track", "--model", run.model, "--config", run.config, "--source", video, "--save", run.config)
    one_error_line(done, "--save", "is an input of this run")


def test_isolate_skips_an_unreadable_image_and_writes_the_rest(run, tmp_path):
    (run.images / "00001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "cutouts"
    done = edgeseg_cli("isolate", "--model", run.model, "--source", run.images, "--save-dir", out)
    assert done.returncode == 0, done.stderr
    assert "skipped 1 of 3 images" in done.stderr and "00001.jpg" in done.stderr
    stems = {p.name.split("_")[0] for p in out.iterdir()}
    assert stems == {"00000", "00002"}
    strict = edgeseg_cli("isolate", "--model", run.model, "--source", run.images, "--save-dir", tmp_path / "s",
                         "--strict")
    one_error_line(strict, "00001.jpg")


def png_bomb(path: Path) -> None:
    """A 100-byte PNG whose header claims 100000 x 100000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
                     + chunk(b"IEND", b""))


def test_a_png_claiming_a_huge_size_is_a_skipped_source_error(run, tmp_path):
    png_bomb(run.images / "00003.png")
    done = edgeseg_cli("predict", "--model", run.model, "--source", run.images, "--save-json", tmp_path / "r.json")
    assert done.returncode == 0 and "skipped 1 of 4" in done.stderr and "00003.png" in done.stderr, done.stderr
    strict = edgeseg_cli("predict", "--model", run.model, "--source", run.images / "00003.png", "--strict")
    one_error_line(strict, "00003.png")


def test_binary_config_files_are_one_line_errors(run, tmp_path):
    binary = tmp_path / "c.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    one_error_line(edgeseg_cli("predict", "--model", run.model, "--source", run.images, "--config", binary),
                   "c.yaml", "not a text")
    video = tmp_path / "clip.avi"
    with VideoWriter(video, 10, (160, 120)) as out:
        out.write(make_scene(160, 120, 2, seed=0).image)
    one_error_line(edgeseg_cli("track", "--model", run.model, "--source", video, "--tracker", binary),
                   "tracker config", "not a text")


def test_a_model_that_is_not_a_path():
    with pytest.raises(ModelNotFoundError, match="model must be the path of an .onnx"):
        Segmenter(None)


def test_an_output_under_an_unreachable_folder(run, monkeypatch, capsys):
    from edgeseg.app import cli

    locked = run.folder / "locked"
    real_exists = Path.exists

    def exists(self, *args, **kwargs):
        if locked in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    code = cli.main(["predict", "--model", str(run.model), "--source", str(run.images), "--quiet",
                     "--save-json", str(locked / "sub" / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("edgeseg: error: cannot reach") and "Permission denied" in err[-1]
    with pytest.raises(OutputError, match="cannot reach"):
        from edgeseg.outputs.files import check_not_inputs

        check_not_inputs({"--save": locked / "v.mp4"}, [str(run.model)])


def test_results_of_arrays_are_named_and_never_overwrite_each_other(tmp_path):
    scenes = [make_scene(320, 240, 4, seed=k).image for k in range(2)]
    with Segmenter(DEMO) as seg:
        first, second = seg(scenes[0])[0], seg(scenes[1])[0]
        batch = seg(scenes)
    assert (first.path, second.path) == ("image0.jpg", "image1.jpg")
    assert [r.path for r in batch] == ["image2.jpg", "image3.jpg"]
    written = first.save_isolated(tmp_path) + second.save_isolated(tmp_path)
    assert len(first) and len(second)
    assert len(set(written)) == len(written) == len(first) + len(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_nan_never_reaches_a_json_file(tmp_path):
    from edgeseg.outputs.files import write_json

    with pytest.raises(OutputError, match="NaN or infinity"):
        write_json(tmp_path / "r.json", [{"bbox": [float("nan"), 0, 1, 1]}])
    assert not list(tmp_path.iterdir())
    write_json(tmp_path / "r.json", [{"bbox": [0.5, 0, 1, 1]}])
    assert json.loads((tmp_path / "r.json").read_text()) == [{"bbox": [0.5, 0, 1, 1]}]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_during_track_keeps_a_playable_video_and_no_temporary(tmp_path):
    video = tmp_path / "long.avi"
    with VideoWriter(video, 25, (320, 240)) as out:
        for k in range(400):
            out.write(make_scene(320, 240, 3, seed=k % 7).image)
    saved = tmp_path / "out" / "tracked.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "track", "--model", str(DEMO), "--source", str(video),
                             "--save", str(saved), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    # wait until the run is writing its video (the temporary file has grown), then stop it as a service manager would
    while time.monotonic() < deadline and proc.poll() is None:
        temporaries = [p for p in saved.parent.glob(".*tmp*")] if saved.parent.exists() else []
        if temporaries and temporaries[0].stat().st_size > 20_000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped: make the video longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "edgeseg: terminated" in err and "Traceback" not in err
    assert no_temporaries(saved.parent)
    capture = cv2.VideoCapture(str(saved))
    ok, frame = capture.read()
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert ok and frame.shape == (240, 320, 3) and 0 < frames < 400


def test_long_image_and_class_names_still_fit_in_file_names(run, tmp_path):
    long = run.images / ("é" * 120 + ".jpg")  # 244 bytes: a legal name, with no room left for "_label-0.png"
    shutil.copy(run.images / "00000.jpg", long)
    out = tmp_path / "cutouts"
    done = edgeseg_cli("isolate", "--model", run.model, "--source", long, "--save-dir", out)
    assert done.returncode == 0, done.stderr
    names = [p.name for p in out.iterdir()]
    assert names and all(len(n.encode()) <= 255 for n in names)
    assert all(n.startswith("é" * 30) for n in names)  # the stem shortened, not dropped

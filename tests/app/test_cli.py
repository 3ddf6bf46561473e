"""The `edgeseg` command, run for real in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.common import edgeseg_cli as edgeseg


@pytest.fixture()
def few_images(val_images, tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for p in val_images[:4]:
        shutil.copy(p, folder / p.name)
    return folder


def test_predict_writes_annotated_images_and_coco_json(shapes_onnx, few_images, tmp_path):
    out, js = tmp_path / "out", tmp_path / "results.json"
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-dir", out, "--save-json", js)
    assert done.returncode == 0, done.stderr
    assert "4 images" in done.stdout and "runs on CPUExecutionProvider" in done.stderr
    names = sorted(p.name for p in few_images.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary files left behind
    for name in names:
        drawn, original = cv2.imread(str(out / name)), cv2.imread(str(few_images / name))
        assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).mean() > 1
    records = json.loads(js.read_text())
    assert records and {r["file_name"] for r in records} <= set(names)
    first = records[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation", "file_name"}
    assert first["image_id"] == int(Path(first["file_name"]).stem)
    assert first["segmentation"]["size"] == [320, 320] and isinstance(first["segmentation"]["counts"], str)


def test_json_matches_library_results(shapes_onnx, few_images, tmp_path):
    from edgeseg import Segmenter

    js = tmp_path / "r.json"
    assert edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-json", js,
                   "--quiet").returncode == 0
    expected = [rec for r in Segmenter(shapes_onnx)(few_images) for rec in r.to_coco()]
    got = json.loads(js.read_text())
    assert [(r["image_id"], r["category_id"], r["bbox"], r["segmentation"]) for r in got] == [
        (r["image_id"], r["category_id"], r["bbox"], r["segmentation"]) for r in expected]


def test_config_file_and_flags_override(shapes_onnx, few_images, tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("conf: 0.1\nclasses: [0]\n")
    js = tmp_path / "a.json"
    assert edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--config", config,
                   "--save-json", js, "--quiet").returncode == 0
    assert {r["category_id"] for r in json.loads(js.read_text())} == {0}
    assert min(r["score"] for r in json.loads(js.read_text())) < 0.25  # conf 0.1 from the file took effect
    assert edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--config", config, "--classes", "4",
                   "--save-json", js, "--quiet").returncode == 0
    assert {r["category_id"] for r in json.loads(js.read_text())} == {4}


def test_shipped_default_config_runs(shapes_onnx, few_images):
    default = Path(__file__).resolve().parents[2] / "edgeseg" / "configs" / "default.yaml"
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--config", default, "--quiet")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "missing.onnx", "--source", "{images}"], "model file not found"),
        (["--model", "{model}", "--source", "no/such/dir"], "source not found"),
        (["--model", "{model}", "--source", "{images}", "--device", "cuda"], "not available"),
        (["--model", "{model}", "--source", "{images}", "--conf", "2"], "conf must be"),
        (["--model", "{model}", "--source", "{images}", "--imgsz", "320"], "fixed 640x640"),
        (["--model", "{model}", "--source", "{images}", "--config", "missing.yaml"], "config file not found"),
        (["--model", "{model}", "--source", "{images}", "--classes", "1,7"], "classes [7] are not classes of"),
        (["--model", "{model}", "--source", "{images}", "--classes", ""], "classes is empty"),
    ],
)
def test_bad_input_one_line_error_nothing_written(shapes_onnx, few_images, tmp_path, args, message):
    js = tmp_path / "out.json"
    args = [a.format(images=few_images, model=shapes_onnx) for a in args]
    done = edgeseg("predict", *args, "--save-json", js, "--save-dir", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("edgeseg: error: ") and message in lines[-1]
    assert "Traceback" not in done.stderr
    assert not js.exists() and not (tmp_path / "out").exists()


def test_corrupt_image_mid_run_with_strict_leaves_no_json(shapes_onnx, few_images, tmp_path):
    (few_images / "zzz-broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    js = tmp_path / "out.json"
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-json", js, "--strict")
    assert done.returncode == 1 and "cannot decode" in done.stderr and "zzz-broken.jpg" in done.stderr
    assert not js.exists() and not list(tmp_path.glob(".out.json.*"))


def test_corrupt_image_mid_run_is_skipped_counted_and_listed(shapes_onnx, few_images, tmp_path):
    (few_images / "bbb-broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    js, out = tmp_path / "out.json", tmp_path / "annotated"
    good = sorted(p.name for p in few_images.iterdir() if p.name != "bbb-broken.jpg")
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-json", js, "--save-dir", out)
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()
    assert f"skipped 1 of {len(good) + 1} images" in done.stderr and "bbb-broken.jpg" in last[-1]
    assert sorted(p.name for p in out.iterdir()) == good  # every other image, before and after the broken one
    assert sorted({r["file_name"] for r in json.loads(js.read_text())}) <= good
    assert f"{len(good)} images" in done.stdout


def test_unwritable_output_is_a_clear_error(shapes_onnx, few_images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-json", blocker / "r.json",
                   "--quiet")
    assert done.returncode == 1 and "edgeseg: error: cannot write" in done.stderr
    done = edgeseg("isolate", "--model", shapes_onnx, "--source", few_images, "--save-dir", blocker, "--quiet")
    assert done.returncode == 1 and f"edgeseg: error: --save-dir {blocker} is a file" in done.stderr


def test_annotated_images_never_replace_their_inputs(shapes_onnx, few_images):
    """--save-dir naming the source folder would write each annotated image over its original."""
    before = {p.name: p.read_bytes() for p in few_images.iterdir()}
    done = edgeseg("predict", "--model", shapes_onnx, "--source", few_images, "--save-dir", few_images, "--quiet")
    assert done.returncode == 1 and "which its output would replace" in done.stderr and "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in few_images.iterdir()} == before


def test_annotated_copies_of_read_only_formats_are_png(shapes_onnx, val_images, tmp_path):
    """OpenCV reads .pgm (grey) and .mpo (JPEG) images but cannot write a colour image as either."""
    image = cv2.imread(str(val_images[0]))
    cv2.imwrite(str(tmp_path / "grey.pgm"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    shutil.copy(val_images[1], tmp_path / "camera.mpo")
    out = tmp_path / "out"
    done = edgeseg("predict", "--model", shapes_onnx, "--source", tmp_path / "grey.pgm", tmp_path / "camera.mpo",
                   "--save-dir", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["camera.png", "grey.png"]
    assert cv2.imread(str(out / "grey.png")).shape == (*image.shape[:2], 3)


def test_inputs_of_one_name_in_two_folders_are_refused(shapes_onnx, few_images, tmp_path):
    """Outputs are named after the input's file name (predict) or stem (isolate): the second would replace the first."""
    first, second = sorted(few_images.iterdir())[:2]
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(second, other / first.name)
    for command in ("predict", "isolate"):
        done = edgeseg(command, "--model", shapes_onnx, "--source", first, other / first.name,
                       "--save-dir", tmp_path / "out", "--quiet")
        assert done.returncode == 1 and "would write files of the same names" in done.stderr, command
    assert not (tmp_path / "out").exists()
    done = edgeseg("predict", "--model", shapes_onnx, "--source", first, first, "--save-dir", tmp_path / "out",
                   "--quiet")
    assert done.returncode == 0, done.stderr  # the same file twice writes the same output twice


def test_debug_shows_the_traceback(few_images):
    done = edgeseg("predict", "--model", "missing.onnx", "--source", few_images, "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ModelNotFoundError" in done.stderr


def test_version_and_usage_errors():
    assert edgeseg("--version").stdout.startswith("edgeseg ")
    script = shutil.which("edgeseg")  # the console script that pip installs
    assert script and subprocess.run([script, "--version"], capture_output=True,
                                     text=True).stdout.startswith("edgeseg ")
    done = edgeseg("predict")  # argparse: --model and --source are required
    assert done.returncode == 2 and done.stderr.count("\n") == 1  # one line, not the usage block
    assert done.stderr.startswith("edgeseg predict: error: the following arguments are required: --model, --source")
    done = edgeseg("predict", "--model", "m.onnx", "--source", "x", "--imgsz", "0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "imgsz must be a positive integer" in done.stderr


def test_isolate_writes_one_png_per_object(shapes_onnx, few_images, tmp_path):
    from edgeseg import Segmenter

    out = tmp_path / "cutouts"
    done = edgeseg("isolate", "--model", shapes_onnx, "--source", few_images, "--save-dir", out,
                   "--background", "transparent", "--save-mask", "--save-crop", "--quiet")
    assert done.returncode == 0, done.stderr
    results = Segmenter(shapes_onnx)(few_images)
    expected = {f"{Path(r.path).stem}_{r.names[int(c)]}-{k}{suffix}.png"
                for r in results for k, c in enumerate(r.boxes.cls) for suffix in ("", "_mask", "_crop")}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # nothing else, no temporary files
    r = results[0]
    first = cv2.imread(str(out / f"{Path(r.path).stem}_{r.names[int(r.boxes.cls[0])]}-0.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(first, r.isolate("transparent")[0])


def test_isolate_full_frame_on_black_from_contours(shapes_onnx, few_images, tmp_path):
    out = tmp_path / "full"
    done = edgeseg("isolate", "--model", shapes_onnx, "--source", few_images / "00000.jpg", "--save-dir", out,
                   "--full", "--method", "contour")
    assert done.returncode == 0, done.stderr
    assert "files in" in done.stdout
    files = list(out.iterdir())
    assert files and all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (320, 320, 3) for p in files)


def test_isolate_bad_options(shapes_onnx, few_images, tmp_path):
    done = edgeseg("isolate", "--model", shapes_onnx, "--source", few_images, "--save-dir", tmp_path / "o",
                   "--background", "white")
    assert done.returncode == 2 and "invalid choice" in done.stderr  # argparse rejects it before anything runs
    done = edgeseg("isolate", "--model", tmp_path / "missing.onnx", "--source", few_images, "--save-dir",
                   tmp_path / "o")
    assert done.returncode == 1 and done.stderr.strip().startswith("edgeseg: error: model file not found")
    assert not (tmp_path / "o").exists()

"""The offline demo: `edgeseg demo` in a subprocess, the synthetic scenes it draws, and the model it ships."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.app.synthetic import MIN_VISIBLE_PIXELS, NAMES, make_scene
from edgeseg.assets import DEMO_MODEL, demo_model_path
from tests.helpers.common import REPO, SHARED


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`edgeseg demo --out DIR --images 2 --quiet`, run once for the tests below."""
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run([sys.executable, "-m", "edgeseg", "demo", "--out", str(out), "--images", "2", "--quiet"],
                          capture_output=True, text=True, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_demo_writes_every_file_its_summary_names(demo_run):
    out, proc = demo_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == DEMO_MODEL and summary["imgsz"] == [320, 320] and summary["provider"]
    assert [(im["width"], im["height"]) for im in summary["images"]] == [(640, 480), (1280, 720)]
    isolated = 0
    for im in summary["images"]:
        source = cv2.imread(str(out / im["input"]))
        annotated = cv2.imread(str(out / im["annotated"]))
        assert source.shape == annotated.shape == (im["height"], im["width"], 3)
        assert np.abs(annotated.astype(np.int16) - source).mean() > 1, "nothing drawn on the annotated image"
        assert all(im["ms"][stage] > 0 for stage in ("preprocess", "inference", "postprocess"))
        assert len(im["isolated"]) == im["found"]
        for name in im["isolated"]:
            cutout = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
            assert cutout.ndim == 3 and cutout.shape[2] == 4, f"{name} is not BGRA"
            alpha = cutout[..., 3]
            assert alpha.max() == 255 and alpha.min() == 0, f"{name}: the object should be opaque, the rest transparent"
        isolated += len(im["isolated"])
    assert isolated > 0
    # nothing else was written, and no temporary file was left behind
    named = {im[key] for im in summary["images"] for key in ("input", "annotated")}
    named |= {name for im in summary["images"] for name in im["isolated"]} | set(summary["summary"])
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == named
    text = (out / "summary.txt").read_text()
    assert text.strip().splitlines()[-1].endswith(str(out))
    if proc.stdout.strip():  # what the command prints is the summary
        assert proc.stdout.strip() == text.strip()


def test_demo_finds_about_the_shapes_it_drew(demo_run):
    out, _ = demo_run
    summary = json.loads((out / "summary.json").read_text())
    for im in summary["images"]:
        assert im["drawn"] > 0
        # a modest model: not every shape, some extra, but found tracks drawn and most masks match a shape
        assert 0.5 * im["drawn"] <= im["found"] <= 1.5 * im["drawn"], im
        assert im["matched"] >= 0.5 * im["drawn"], im
        assert im["right_class"] <= im["matched"] <= im["found"]
    assert summary["totals"]["drawn"] == sum(im["drawn"] for im in summary["images"])


def test_demo_default_folder_is_numbered_and_loads_no_torch(tmp_path):
    code = ("import sys\nfrom edgeseg.app.demo import run_demo\n"
            "a, b = run_demo(images=1, progress=False), run_demo(images=1, progress=False)\n"
            "print(a.out_dir, b.out_dir, 'torch' in sys.modules, 'ultralytics' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(Path("runs/demo")), str(Path("runs/demo2")), "False", "False"]
    assert (tmp_path / "runs" / "demo2" / "summary.json").is_file()


@pytest.mark.parametrize("images", [0, -1, 1.5, True])
def test_demo_rejects_a_bad_image_count(images, tmp_path):
    from edgeseg.app.demo import run_demo

    with pytest.raises(ConfigError, match="images"):
        run_demo(tmp_path / "out", images=images, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_demo_rejects_a_bad_seed(seed, tmp_path):
    from edgeseg.app.demo import run_demo

    with pytest.raises(ConfigError, match="seed"):
        run_demo(tmp_path / "out", images=1, seed=seed, progress=False)
    assert not (tmp_path / "out").exists()


def test_demo_model_ships_in_the_package():
    path = demo_model_path()
    assert path.name == DEMO_MODEL and path.parent == REPO / "edgeseg" / "assets"
    with Segmenter(path) as seg:
        assert seg.names == dict(enumerate(NAMES)) and seg.num_classes == 5
        assert seg.imgsz == (320, 320) and not seg.end2end
    # a non-editable install carries only what package-data names
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.onnx" in package_data["edgeseg.assets"]


# --- edgeseg.app.synthetic ---


@pytest.mark.parametrize("layout", ["grid", "random"])
def test_scenes_are_seeded(layout):
    a, b = make_scene(320, 240, 8, seed=3, layout=layout), make_scene(320, 240, 8, seed=3, layout=layout)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance_ids, b.instance_ids)
    assert np.array_equal(a.classes, b.classes) and all(np.array_equal(p, q)
                                                        for p, q in zip(a.polygons, b.polygons, strict=True))
    c = make_scene(320, 240, 8, seed=4, layout=layout)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("size, objects, layout", [((640, 480), 6, "grid"), ((1280, 720), 24, "grid"),
                                                   ((97, 61), 3, "grid"), ((320, 320), (1, 12), "random")])
def test_scene_ground_truth_is_inside_the_image_and_matches_the_masks(size, objects, layout):
    width, height = size
    for seed in range(5):
        scene = make_scene(width, height, objects, seed, layout)
        n = len(scene)
        assert scene.image.shape == (height, width, 3) and scene.image.dtype == np.uint8
        assert scene.classes.dtype == np.int64 and ((scene.classes >= 0) & (scene.classes < len(NAMES))).all()
        if layout == "grid":
            assert 0 < n <= objects
        assert scene.instance_ids.max() == n
        assert (scene.areas >= MIN_VISIBLE_PIXELS).all()
        masks = scene.masks
        assert masks.shape == (n, height, width) and masks.dtype == np.uint8
        for i, (polygon, box) in enumerate(zip(scene.polygons, scene.boxes, strict=True)):
            assert polygon.dtype == np.float32 and polygon.shape[1] == 2 and len(polygon) >= 3
            assert (polygon >= 0).all() and (polygon[:, 0] < width).all() and (polygon[:, 1] < height).all()
            ys, xs = np.nonzero(masks[i])
            assert np.array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert np.array_equal(scene.mask(i), masks[i].astype(bool))
            # the outline is the largest visible part: drawn filled, it covers most of the mask
            filled = cv2.fillPoly(np.zeros((height, width), np.uint8), [polygon.astype(np.int32)], 1)
            assert np.logical_and(filled, masks[i]).sum() >= 0.5 * masks[i].sum()
        for line in scene.yolo_labels().splitlines():
            values = np.array(line.split()[1:], float)
            assert len(values) % 2 == 0 and ((values >= 0) & (values <= 1)).all()


def test_random_layout_is_the_training_distribution():
    """The shared dataset (make_shapes.py, seed 1: 600 train then 120 val images from one stream) comes out
    label file for label file."""
    labels = SHARED / "data" / "shapes-seg" / "labels" / "val"
    if not labels.is_dir():
        pytest.fail(f"shared labels missing: {labels} (set EDGESEG_SHARED to the shared folder)")
    rng = np.random.default_rng(1)
    for _ in range(600):
        make_scene(320, 320, (1, 12), rng, layout="random")
    for i in range(5):
        assert (make_scene(320, 320, (1, 12), rng, layout="random").yolo_labels()
                == (labels / f"{i:05d}.txt").read_text())


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=4, height=100, objects=3), "size"),
    (dict(width=100, height=100, objects=-1), "objects"),
    (dict(width=100, height=100, objects=(5, 2), layout="random"), "objects"),
    (dict(width=100, height=100, objects=(1, 3)), "grid"),
    (dict(width=100, height=100, objects=3, layout="spiral"), "layout"),
])  # fmt: skip
def test_make_scene_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_scene(**kwargs)


def test_scene_without_objects():
    scene = make_scene(64, 48, 0)
    assert len(scene) == 0 and scene.boxes.shape == (0, 4) and scene.masks.shape == (0, 48, 64)
    assert scene.yolo_labels() == "" and not scene.instance_ids.any()

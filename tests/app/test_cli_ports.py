"""The command line's rough edges found by porting Ultralytics habits (issue 14): COCO ids, the verbose lines and
the progress bar, the benchmark's closing line, a fixed-batch model asked for larger batches, track's help."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import pytest

from edgeseg import ConfigError
from edgeseg.app.progress import Progress
from edgeseg.app.synthetic import make_scene
from edgeseg.assets import demo_model_path
from edgeseg.outputs.coco import image_ids, stable_id
from tests.helpers.common import edgeseg_cli

DEMO = demo_model_path()


@pytest.fixture()
def named_images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for k, name in enumerate(["street.jpg", "yard.jpg", "dock.jpg"]):
        cv2.imwrite(str(folder / name), make_scene(320, 240, 4, seed=k).image)
    return folder


def test_image_ids_are_integers_for_any_file_names():
    assert image_ids(["a/000042.jpg", "b/7.png"]) == {"a/000042.jpg": 42, "b/7.png": 7}
    assert image_ids(["x/b.jpg", "x/a.jpg", "x/3.jpg"]) == {"x/b.jpg": 0, "x/a.jpg": 1, "x/3.jpg": 2}
    assert image_ids(["1.jpg", "01.jpg"]) == {"1.jpg": 0, "01.jpg": 1}  # two stems of one number: not ids
    assert stable_id("street.jpg") == stable_id("street.jpg") != stable_id("yard.jpg")
    assert 0 <= stable_id("street.jpg") < 2**31


def test_save_json_is_loadable_by_pycocotools_with_the_ground_truths_ids(named_images, tmp_path):
    pycocotools = pytest.importorskip("pycocotools.coco")
    names = sorted(p.name for p in named_images.iterdir())
    truth = {"images": [{"id": 100 + k, "file_name": f"val/{n}", "height": 240, "width": 320}
                        for k, n in enumerate(names)],
             "annotations": [], "categories": [{"id": c, "name": str(c)} for c in range(8)]}
    gt = tmp_path / "instances_val.json"
    gt.write_text(json.dumps(truth))
    out = tmp_path / "r.json"
    done = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--save-json", out, "--coco-ids", gt)
    assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    assert records and {r["image_id"] for r in records} <= {100, 101, 102}
    by_name = {im["file_name"].split("/")[-1]: im["id"] for im in truth["images"]}
    assert all(r["image_id"] == by_name[r["file_name"]] for r in records)
    coco = pycocotools.COCO(str(gt))
    assert len(coco.loadRes(str(out)).anns) == len(records)

    plain = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--save-json", tmp_path / "p.json")
    assert plain.returncode == 0, plain.stderr
    ids = {r["file_name"]: r["image_id"] for r in json.loads((tmp_path / "p.json").read_text())}
    assert all(isinstance(v, int) for v in ids.values()) and set(ids.values()) <= {0, 1, 2}


def test_coco_ids_errors(named_images, tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "street.jpg"}]}))
    done = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--save-json", tmp_path / "r.json",
                       "--coco-ids", gt)
    assert done.returncode == 1 and "2 of the 3 images are not in" in done.stderr
    with pytest.raises(ConfigError, match="not a COCO annotations file"):
        gt.write_bytes(b"\x00\xff binary")
        image_ids(["street.jpg"], gt)
    alone = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--coco-ids", gt)
    assert alone.returncode == 1 and "give --save-json too" in alone.stderr


def test_progress_write_puts_a_line_above_the_bar():
    out = io.StringIO()
    with Progress(3, "predict", stream=out) as bar:
        bar.update()
        bar.write("1/3 first image")
        bar.update()
    text = out.getvalue()
    # the line stands on its own (the bar cleared before it), and the bar is drawn again after it
    assert "\r" + " " * 80 + "\r1/3 first image\n\rpredict 1/3" in text.replace("\r" + " " * 81, "\r" + " " * 80)
    assert text.rstrip().endswith("img/s") or "2/3" in text.splitlines()[-1]


def test_verbose_lines_and_the_bar_do_not_overwrite_each_other(named_images):
    done = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--verbose")
    assert done.returncode == 0, done.stderr
    lines = [line.split("\r")[-1] for line in done.stderr.splitlines()]
    assert sum(line.startswith(f"{k}/3 Results(") for k in (1, 2, 3) for line in lines) == 3


def test_a_fixed_batch_model_says_why_it_runs_one_at_a_time(named_images):
    done = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--batch", "4")
    assert done.returncode == 0 and "--batch 4:" in done.stderr and "takes batches of exactly 1" in done.stderr


def test_track_help_names_videos_not_images():
    done = edgeseg_cli("track", "--help")
    assert "video file" in done.stdout and "image files" not in done.stdout


@pytest.mark.parametrize("plots", [[], ["latency.png", "stages.png"]])
def test_benchmark_says_only_what_it_wrote(tmp_path, monkeypatch, capsys, plots):
    from edgeseg.app import cli

    monkeypatch.setattr("edgeseg.app.benchmark.run_benchmark", lambda *a, **k: {"plots": plots})
    monkeypatch.setattr("edgeseg.app.benchmark.report.format_table", lambda report: "table")
    assert cli.main(["benchmark", "--model", str(DEMO), "--out", str(tmp_path), "--no-startup"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"report in {tmp_path / 'benchmark.json'}")
    assert ("2 plots beside it" in last) == bool(plots) and ("no plots" in last) == (not plots)


def test_video_progress_has_a_total_and_one_rate(tmp_path):
    from edgeseg.outputs.video_writer import VideoWriter

    video = tmp_path / "clip.avi"
    with VideoWriter(video, 10, (160, 120)) as out:
        for k in range(12):
            out.write(make_scene(160, 120, 2, seed=k).image)
    done = edgeseg_cli("track", "--model", DEMO, "--source", video)
    assert done.returncode == 0, done.stderr
    bar = [line for line in done.stderr.splitlines() if line.startswith("frames ")][-1]  # text mode: \r is \n
    assert "12/12" in bar and bar.count("fps") == 1


def test_input_frame_masks_from_the_flag_or_the_yaml(named_images, tmp_path):
    """--no-retina-masks and retina_masks: false give Ultralytics' default path: the same boxes, masks brought to
    the source for the COCO output (their RLE is of the image's size), and --retina-masks overrides the file."""
    from edgeseg import Segmenter

    runs = {}
    config = tmp_path / "small.yaml"
    config.write_text("retina_masks: false\n")
    for name, flags in {"source": [], "flag": ["--no-retina-masks"], "yaml": ["--config", config],
                        "back": ["--config", config, "--retina-masks"]}.items():
        out = tmp_path / f"{name}.json"
        done = edgeseg_cli("predict", "--model", DEMO, "--source", named_images, "--quiet", "--save-json", out,
                           *flags)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(out.read_text())
    assert runs["flag"] == runs["yaml"] and runs["back"] == runs["source"] and runs["flag"] != runs["source"]
    assert [r["bbox"] for r in runs["flag"]] == [r["bbox"] for r in runs["source"]] and len(runs["flag"]) > 6
    assert all(r["segmentation"]["size"] == [240, 320] for r in runs["flag"])
    seg = Segmenter(DEMO, retina_masks=False)
    expected = [record for path in sorted(named_images.iterdir()) for record in seg.predict(path)[0].to_coco()]
    assert sorted(r["segmentation"]["counts"] for r in runs["flag"]) == sorted(
        r["segmentation"]["counts"] for r in expected)


def test_input_frame_masks_need_the_cpu_path():
    from edgeseg import PredictConfig

    with pytest.raises(ConfigError, match="retina_masks=False .* runs on the CPU path only"):
        PredictConfig(retina_masks=False, device="cuda")

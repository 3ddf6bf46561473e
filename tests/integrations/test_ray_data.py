"""Ray Data: an archive of images and videos segmented on a local two-CPU Ray cluster gives the rows of a local
Segmenter run, row for row (in any order); videos are tracked whole, each with a fresh tracker; bad inputs are
skipped and counted; outputs never land on inputs and a failed write is an error."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from edgeseg import ProviderOptions, Segmenter  # noqa: E402
from edgeseg.app.synthetic import panning_frames  # noqa: E402
from edgeseg.errors import OutputError  # noqa: E402
from edgeseg.integrations import ray as ray_batch  # noqa: E402
from edgeseg.integrations.common import RECORD_COLUMNS, error_row, records_table  # noqa: E402

TRACKER = "bytetrack.yaml"  # named, so that the test does not follow the default tracker's changes


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, val_images) -> Path:
    """Four images, one file that is no image, and two short videos of the same panning scene."""
    folder = tmp_path_factory.mktemp("archive")
    for p in val_images[:4]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    writer = cv2.VideoWriter(str(folder / "pan.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in panning_frames(320, 240, objects=4, frames=10, seed=3):
        writer.write(frame)
    writer.release()
    shutil.copy(folder / "pan.avi", folder / "pan2.avi")
    return folder


@pytest.fixture(scope="module")
def local(shapes_onnx):
    # one ONNX Runtime thread, as in the actors: the same arithmetic, so the same floats
    with Segmenter(shapes_onnx, provider_options=ProviderOptions(cpu_threads=1)) as seg:
        yield seg


def local_rows(seg: Segmenter, archive: Path) -> list[dict]:
    rows = []
    for image in sorted(archive.glob("0*.jpg")):
        rows += seg.predict(str(image))[0].to_records()
    for video in sorted(archive.glob("*.avi")):
        for k, r in enumerate(seg.track(str(video), tracker=TRACKER, persist=False)):
            rows += r.to_records(frame=k)
    return rows


def ordered(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["source"], -1 if r["frame"] is None else r["frame"], r["object"]))


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(ordered(got), ordered(expected), strict=True):
        assert a == b


def test_the_table_schema_holds_every_record_column(local, val_images):
    rows = local.predict(str(val_images[0]))[0].to_records()
    assert rows and list(rows[0]) == [name for name, _ in RECORD_COLUMNS]


def test_the_udf_reads_paths_bytes_and_rgb_arrays_as_a_local_run_does(shapes_onnx, local, val_images):
    udf = ray_batch.SegmentImages(shapes_onnx)  # no cluster: the UDF is a plain callable
    paths = [str(p) for p in val_images[:2]]
    expected = [row for p in paths for row in local.predict(p)[0].to_records()]
    by_path = udf({"path": np.array(paths, object)}).to_pylist()
    by_bytes = udf({"bytes": np.array([Path(p).read_bytes() for p in paths], object),
                    "path": np.array(paths, object)}).to_pylist()
    rgb = [cv2.imread(p)[..., ::-1] for p in paths]  # what ray.data.read_images gives
    by_array = udf({"image": np.array(rgb + [None], object)[:2], "path": np.array(paths, object)}).to_pylist()
    for got in (by_path, by_bytes, by_array):
        assert [{k: v for k, v in row.items() if k != "error"} for row in got] == expected
        assert all(row["error"] is None for row in got)
    grey = cv2.imread(paths[0], cv2.IMREAD_GRAYSCALE)  # a grey image: read_images gives (H, W), no channels to swap
    assert [{k: v for k, v in row.items() if k not in ("error", "source")}
            for row in udf({"image": np.array([grey, None], object)[:1]}).to_pylist()] == [
        {k: v for k, v in row.items() if k != "source"} for row in local.predict(grey)[0].to_records()]
    broken = udf({"bytes": np.array([b"", b"\x89PNG junk"], object)}).to_pylist()
    assert [(row["source"], row["object"]) for row in broken] == [("image 0", None), ("image 1", None)]
    assert "empty" in broken[0]["error"] and "cannot decode image 1" in broken[1]["error"]


def test_a_video_that_cannot_be_opened_is_one_error_row_and_the_next_one_is_tracked(shapes_onnx, archive, tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    udf = ray_batch.TrackVideos(shapes_onnx, tracker=TRACKER)
    tables = list(udf({"path": np.array([str(junk), str(archive / "pan.avi")], object)}))
    assert [row["error"] is not None for row in tables[0].to_pylist()] == [True]
    assert "cannot open video" in tables[0]["error"][0].as_py()
    frames = [row["frame"] for t in tables[1:] for row in t.to_pylist()]
    assert frames == sorted(frames) and set(frames) == set(range(10))


def test_images_and_videos_on_ray_give_the_rows_and_track_ids_of_a_local_run(cluster, archive, shapes_onnx, local):
    images = sorted(str(p) for p in archive.glob("*.jpg"))
    videos = sorted(str(p) for p in archive.glob("*.avi"))
    got_images = ray_batch.segment_dataset(images, shapes_onnx, actors=2, batch_size=2).take_all()
    got_videos = ray_batch.track_videos(videos, shapes_onnx, actors=2, tracker=TRACKER).take_all()
    errors = [row for row in got_images if row["error"] is not None]
    assert [(row["source"], row["x1"]) for row in errors] == [(str(archive / "broken.jpg"), None)]
    got = [{k: v for k, v in row.items() if k != "error"} for row in got_images + got_videos if row["error"] is None]
    expected = local_rows(local, archive)
    assert_same_rows(got, expected)
    # each video tracked whole with a fresh tracker: the copy has the ids of the original, frame for frame
    tracked = [row for row in got if row["frame"] is not None]
    assert tracked and all(row["track_id"] is not None for row in tracked)
    per_video = {v: [(r["frame"], r["object"], r["track_id"]) for r in ordered(tracked) if r["source"] == v]
                 for v in videos}
    assert per_video[videos[0]] == per_video[videos[1]] and min(r[2] for r in per_video[videos[0]]) == 1


def test_the_batch_command_writes_every_row_and_reports_the_bad_image(cluster, archive, shapes_onnx, local, tmp_path,
                                                                     capsys):
    parser = argparse.ArgumentParser()
    ray_batch.add_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["batch", "--engine", "ray", "--source", str(archive), "--out", str(out), "--model",
                              str(shapes_onnx), "--actors", "2", "--tracker", TRACKER, "--quiet"])
    assert ray_batch.run(args) == 0
    assert [p.name for p in out.iterdir()] == ["detections.parquet"]  # no temporary file left
    table = pq.read_table(out / "detections.parquet")
    assert table.schema.names == [name for name, _ in RECORD_COLUMNS]
    assert_same_rows(table.to_pylist(), local_rows(local, archive))
    err = capsys.readouterr().err
    assert "skipped 1 of 7 inputs" in err and f"{archive / 'broken.jpg'}" in err



def test_json_lines_hold_the_rows_of_parquet_and_errors_are_counted_not_written(local, val_images, tmp_path):
    rows = [row for p in val_images[:2] for row in local.predict(str(p))[0].to_records()]
    batches = [records_table(rows[:3]), records_table([error_row("x.jpg", "cannot decode x.jpg")]),
               records_table(rows[3:])]
    for file_format in ("parquet", "jsonl"):
        report = ray_batch.BatchReport(tmp_path / "unused")
        path = ray_batch.write_records(iter(batches), tmp_path / f"rows.{file_format}", file_format, report)
        if file_format == "parquet":
            assert pq.read_table(path).to_pylist() == rows
        else:
            assert [json.loads(line) for line in path.read_text().splitlines()] == rows
        assert (report.objects, report.skipped) == (len(rows), ["cannot decode x.jpg"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "rows.parquet"]


def test_outputs_never_land_on_inputs(archive, shapes_onnx, tmp_path):
    before = sorted(p.name for p in archive.iterdir())
    for out in (archive, archive.parent):  # the input folder itself, and a folder that holds it
        with pytest.raises(OutputError, match="holds the input folder"):
            ray_batch.run_batch(archive, out, shapes_onnx)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        ray_batch.run_batch(archive, tmp_path / "file", shapes_onnx)
    model = tmp_path / "models" / "detections.parquet"  # a model the output file would replace
    model.parent.mkdir()
    shutil.copy(shapes_onnx, model)
    with pytest.raises(OutputError, match="is an input of this run"):
        ray_batch.run_batch(archive, model.parent, model)
    assert sorted(p.name for p in archive.iterdir()) == before


def test_a_failed_write_is_an_error_and_leaves_no_temporary_file(local, val_images, tmp_path):
    rows = local.predict(str(val_images[0]))[0].to_records()
    (tmp_path / "detections.parquet").mkdir()  # the output's name is taken by a folder
    for file_format in ("parquet", "jsonl"):
        target = tmp_path / "detections.parquet"
        with pytest.raises(OutputError, match="cannot write"):
            ray_batch.write_records([records_table(rows)], target, file_format, ray_batch.BatchReport(target))

    def failing():  # the cluster fails halfway: nothing is left under the output's name, nor a temporary file
        yield records_table(rows)
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        ray_batch.write_records(failing(), tmp_path / "rows.jsonl", "jsonl", ray_batch.BatchReport(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["detections.parquet"]

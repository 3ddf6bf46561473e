"""The export step: checkpoints to ONNX through edgeseg_export, loaded by the runtime and verified against PyTorch."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edgeseg import ConfigError, ExportError, ModelNotFoundError, NotSegmentationModelError, OutputError, Segmenter
from tests.helpers.common import SHAPES_PT, edgeseg_cli

pytest.importorskip("ultralytics")
from edgeseg_export import export
from edgeseg_export.to_onnx import OnnxOptions, export_onnx, is_hub_name
from edgeseg_export.verify import TOLERANCES, match, verify


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A writable copy of the shared checkpoint (default outputs go beside it)."""
    folder = tmp_path_factory.mktemp("checkpoint")
    return Path(shutil.copy(SHAPES_PT, folder / SHAPES_PT.name))


@pytest.fixture(scope="module")
def exports(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The shapes model exported once per variant, at 320 to keep the tests quick."""
    out = tmp_path_factory.mktemp("exports")
    variants = {
        "fp32": OnnxOptions(imgsz=(320, 320)),
        "fp16": OnnxOptions(imgsz=(320, 320), half=True),
        "dynamic": OnnxOptions(imgsz=(320, 320), dynamic=True, batch=8),
        "nms": OnnxOptions(imgsz=(320, 320), nms=True),
    }
    return {name: export_onnx(checkpoint, out / f"{name}.onnx", options) for name, options in variants.items()}


def input_type(path: Path) -> tuple[int, list]:
    graph = onnx.load(str(path), load_external_data=False).graph
    tensor = graph.input[0].type.tensor_type
    return tensor.elem_type, [d.dim_value or d.dim_param for d in tensor.shape.dim]


def test_exports_carry_ultralytics_metadata_and_load_in_the_runtime(exports):
    for name, path in exports.items():
        seg = Segmenter(path)
        assert seg.names == {0: "circle", 1: "rectangle", 2: "triangle", 3: "hexagon", 4: "star"}, name
        assert seg.end2end == (name == "nms")
    assert input_type(exports["fp32"]) == (onnx.TensorProto.FLOAT, [1, 3, 320, 320])
    assert input_type(exports["fp16"])[0] == onnx.TensorProto.FLOAT  # FP16 weights, float32 input and outputs
    weights = onnx.load(str(exports["fp16"])).graph.initializer
    assert sum(w.data_type == onnx.TensorProto.FLOAT16 for w in weights) > len(weights) / 2
    assert exports["fp16"].stat().st_size < 0.6 * exports["fp32"].stat().st_size
    kind, dims = input_type(exports["dynamic"])
    assert all(isinstance(d, str) for d in dims[:1] + dims[2:])  # batch, height and width are symbolic


@pytest.mark.parametrize("name, precision", [("fp32", "fp32"), ("fp16", "fp16"), ("nms", "fp32")])
def test_exports_pass_verify(exports, checkpoint, val_images, name, precision):
    report = verify(exports[name], checkpoint, val_images[:20], precision=precision)
    assert report.passed, report.format()
    assert report.images == 20 and report.reference_detections > 50
    if name == "nms":
        assert report.max_output_diff is None  # NMS in the graph: the raw outputs are not comparable
    else:
        assert report.max_output_diff is not None and report.max_output_diff <= TOLERANCES[precision].max_output_diff


def test_verify_fails_beyond_the_tolerances(exports, checkpoint, val_images):
    """FP16 weights are not FP32 weights: judged by the FP32 tolerances, the FP16 export fails."""
    report = verify(exports["fp16"], checkpoint, val_images[:5], precision="fp32")
    assert not report.passed and "largest output difference" in report.failures[0]
    assert "FAIL" in report.format()


def test_dynamic_export_runs_batches_of_1_3_and_8(exports, checkpoint, val_images):
    report = verify(exports["dynamic"], checkpoint, val_images[:6], precision="fp32")
    assert report.passed, report.format()
    images = [cv2.imread(str(p)) for p in val_images[:8]]
    one = [Segmenter(exports["dynamic"], imgsz=320)(image)[0] for image in images]
    for batch in (1, 3, 8):
        seg = Segmenter(exports["dynamic"], imgsz=320, batch=batch)
        assert seg.batch_size == batch
        for single, batched in zip(one, seg(images), strict=True):
            np.testing.assert_allclose(single.boxes.xyxy, batched.boxes.xyxy, atol=1e-3)
            assert len(single) == len(batched)


def test_yolo26_end_to_end_export_runs_in_the_runtime(tmp_path, val_images):
    path = export_onnx("yolo26n-seg.yaml", tmp_path / "yolo26.onnx", OnnxOptions(imgsz=(320, 320)))
    seg = Segmenter(path, conf=1e-5)
    assert seg.end2end and seg.num_classes == 80
    r = seg(val_images[0])[0]
    assert r.masks.data.shape == (len(r), 320, 320)


def test_default_output_name_and_stride_rounding(checkpoint, caplog):
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        result = export(checkpoint, imgsz="300,330", half=True)
    assert result.path == checkpoint.with_name("shapes11n-seg-fp16.onnx") and result.report is None
    assert input_type(result.path)[1] == [1, 3, 320, 352]  # rounded up to the stride, with a warning
    assert any("not a multiple of the stride" in m for m in caplog.messages)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ModelNotFoundError, match="checkpoint not found"):
        export(tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(SHAPES_PT.read_bytes()[:10_000])
    with pytest.raises(ExportError, match=r"cannot load .*broken.pt as an Ultralytics checkpoint"):
        export(broken)
    with pytest.raises(ExportError, match="expected a PyTorch checkpoint"):
        export(tmp_path / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt"]  # nothing written


@pytest.mark.parametrize("yaml, task", [("yolo11n.yaml", "detect"), ("yolo11n-cls.yaml", "classify")])
def test_not_segmentation_checkpoints(tmp_path, yaml, task):
    from ultralytics import YOLO

    path = tmp_path / f"{task}.pt"
    YOLO(yaml).save(path)
    with pytest.raises(NotSegmentationModelError, match=f"'{task}' model, not a segmentation model"):
        export(path)
    assert not list(tmp_path.glob("*.onnx"))


def test_hub_names_fail_offline_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_hub_name("yolo11n-seg.pt") and not is_hub_name("models/yolo11n-seg.pt") and not is_hub_name("mine.pt")
    with pytest.raises(ExportError, match="could not be downloaded.*pass a local .pt file"):
        export("yolo11n-seg.pt")


def test_unwritable_output_fails_before_exporting(checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="cannot write"):
        export(checkpoint, out=blocker / "model.onnx")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        export(checkpoint, out=tmp_path / "folder.onnx")
    with pytest.raises(ConfigError, match="format onnx writes a .onnx file"):
        export(checkpoint, out=tmp_path / "model.engine")


def test_option_errors(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="format"):
        export(checkpoint, "tflite")
    with pytest.raises(ConfigError, match="one of half"):
        export(checkpoint, half=True, int8=True, calib_dir=tmp_path)
    with pytest.raises(ConfigError, match="calibration images"):
        export(checkpoint, int8=True)
    with pytest.raises(ConfigError, match="calibration folder not found"):
        export(checkpoint, int8=True, calib_dir=tmp_path / "none")
    with pytest.raises(ConfigError, match="imgsz"):
        export(checkpoint, imgsz="big")
    with pytest.raises(ConfigError, match="a model YAML has none"):
        export("yolo11n-seg.yaml", verify_after=True)


def test_engine_without_tensorrt_says_so_and_writes_nothing(checkpoint):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the engine build itself is what runs")
    with pytest.raises(ExportError, match="TensorRT is not installed.*--format onnx"):
        export(checkpoint, "engine", half=True)
    assert not list(checkpoint.parent.glob("*.engine"))


def test_match_pairs_by_class_and_iou():
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    ours = np.array([[1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    pairs = match(ref, [0, 1, 2], ours, [0, 0, 1])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]  # one box per reference; other classes never match
    assert match(ref[:0], [], ours, [0, 0, 1]) == []


def test_cli_export_and_verify(checkpoint, val_images, tmp_path):
    out = tmp_path / "cli.onnx"
    done = edgeseg_cli("export", checkpoint, "--imgsz", "320", "--out", out, "--verify", "--verify-images",
                       *val_images[:8], "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"exported {out}" in done.stdout and "-> PASS" in done.stdout
    assert Segmenter(out).imgsz == (320, 320)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.onnx"]


def test_cli_export_errors(tmp_path):
    done = edgeseg_cli("export", tmp_path / "missing.pt")
    missing = tmp_path / "missing.pt"
    assert done.returncode == 1 and done.stderr.strip() == f"edgeseg: error: checkpoint not found: {missing}"
    done = edgeseg_cli("export", SHAPES_PT, "--format", "engine", "--out", tmp_path / "m.engine")
    assert done.returncode == 1 and "TensorRT is not installed" in done.stderr
    assert not list(tmp_path.iterdir())


def test_cli_exits_1_when_verify_fails(checkpoint, tmp_path, monkeypatch, capsys):
    """A failing report makes the command fail, and keeps the file for inspection."""
    import edgeseg_export.api as api
    from edgeseg.app.cli import main

    real_verify = api.verify
    monkeypatch.setattr(api, "verify", lambda path, model, images, precision: real_verify(path, model, images, "fp32"))
    out = tmp_path / "half.onnx"
    code = main(["export", str(checkpoint), "--imgsz", "320", "--half", "--out", str(out), "--verify", "--quiet",
                 "--verify-images", str(SHAPES_PT.parents[1] / "data" / "shapes-seg" / "images" / "val" / "00000.jpg")])
    captured = capsys.readouterr()
    assert code == 1 and "FAIL" in captured.out and "disagrees with" in captured.err and out.exists()


def test_int8_export_loads_and_passes_verify(checkpoint, val_images, tmp_path):
    """INT8 QDQ through the one export call, calibrated on synthetic scenes (not the images it is verified on)."""
    from edgeseg.app.synthetic import make_scene

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(7)
    for k in range(16):
        cv2.imwrite(str(calib / f"{k}.jpg"), make_scene(320, 320, (1, 12), rng, layout="random").image)
    result = export(checkpoint, imgsz=320, int8=True, calib_dir=calib, out=tmp_path / "int8.onnx", verify_after=True,
                    verify_images=val_images[:20])
    assert result.report is not None and result.report.precision == "int8"
    assert result.report.passed, result.report.format()
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert Segmenter(result.path).names[4] == "star"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "int8.onnx"]

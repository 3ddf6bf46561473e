"""`edgeseg export M.onnx --triton REPO` (edgeseg_export.triton_repo): the repository's layout, its config.pbtxt files
read as Triton reads them (tritonclient's ModelConfig, in the Triton test environment), engines written as plain
plans, and REPO written whole or not at all, never over anything."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from edgeseg import ConfigError, ModelFormatError, OutputError
from edgeseg.assets import demo_model_path
from edgeseg_export import triton_repo
from edgeseg_export.triton_repo import write_triton_repository
from tests.helpers.triton_env import run_in_venv, venv_or_skip

DEMO = demo_model_path()
MODELS = ("edgeseg", "edgeseg_preprocess", "edgeseg_network", "edgeseg_postprocess")


@pytest.fixture(scope="session")
def triton_python():
    return venv_or_skip()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_repository_holds_the_four_models_the_model_and_a_readme(tmp_path):
    repo = write_triton_repository(DEMO, tmp_path / "repo")
    assert repo.models == MODELS and repo.network_backend == "onnxruntime"
    assert repo.max_batch_size == 0  # the demo model takes a fixed batch of 1
    assert any("fixed batch of 1" in note for note in repo.notes)
    files = sorted(str(p.relative_to(repo.path)) for p in repo.path.rglob("*") if p.is_file())
    assert files == ["README.md", "edgeseg/config.pbtxt", "edgeseg_network/1/model.onnx",
                     "edgeseg_network/config.pbtxt", "edgeseg_postprocess/1/model.py",
                     "edgeseg_postprocess/config.pbtxt", "edgeseg_preprocess/1/model.py",
                     "edgeseg_preprocess/config.pbtxt"]
    assert (repo.path / "edgeseg" / "1").is_dir()  # an ensemble needs its (empty) version folder
    assert (repo.path / "edgeseg_network/1/model.onnx").read_bytes() == DEMO.read_bytes()
    assert "PostprocessModel as TritonPythonModel" in (repo.path / "edgeseg_postprocess/1/model.py").read_text()
    readme = (repo.path / "README.md").read_text()
    assert "nvcr.io/nvidia/tritonserver" in readme and "pip install edgeseg" in readme
    assert "backends themselves were NOT run" in readme
    assert _leftovers(tmp_path) == []


def test_the_configs_parse_as_triton_model_configs_and_chain_up(triton_python, shapes_dynamic_onnx, tmp_path):
    fixed = write_triton_repository(DEMO, tmp_path / "fixed", conf=0.4, classes=[1, 3])
    dynamic = write_triton_repository(shapes_dynamic_onnx, tmp_path / "dynamic", imgsz=320, max_batch=16,
                                      queue_delay_us=500, kind="cpu", instances=2)
    for repo, batch in ((fixed, 0), (dynamic, 16)):
        configs = run_in_venv(triton_python, "configs", "--repo", str(repo.path))
        assert sorted(configs) == sorted(MODELS)
        for name in MODELS:
            assert configs[name]["name"] == name
            assert configs[name].get("max_batch_size", 0) == batch
            assert ("dynamic_batching" in configs[name]) == (batch > 0 and name != "edgeseg")
        ensemble, pre, net, post = (configs[n] for n in MODELS)
        assert ensemble["platform"] == "ensemble" and net["backend"] == "onnxruntime"
        assert pre["backend"] == post["backend"] == "python"
        steps = ensemble["ensemble_scheduling"]["step"]
        assert [s["model_name"] for s in steps] == list(MODELS[1:])
        # every tensor a step reads is one the ensemble has or an earlier step wrote
        known = {"IMAGE"}
        for step in steps:
            assert set(step["input_map"].values()) <= known, step
            known |= set(step["output_map"].values())
        assert "DETECTIONS" in known
        # the stages' tensors are the network's own
        assert [t["name"] for t in net["input"]] == [t["name"] for t in pre["output"]][:1] == ["images"]
        assert [t["name"] for t in net["output"]] == [t["name"] for t in post["input"]][:2] == ["output0", "output1"]
        settings = json.loads(post["parameters"]["edgeseg"]["string_value"])
        assert settings["num_classes"] == 5 and settings["end2end"] is False
    fixed_post = json.loads(run_in_venv(triton_python, "configs", "--repo", str(fixed.path))
                            ["edgeseg_postprocess"]["parameters"]["edgeseg"]["string_value"])
    assert fixed_post["predict"]["conf"] == 0.4 and fixed_post["predict"]["classes"] == [1, 3]
    net = run_in_venv(triton_python, "configs", "--repo", str(dynamic.path))["edgeseg_network"]
    assert net["input"][0]["dims"] == ["3", "-1", "-1"]  # batch dimension left to Triton; any size
    assert net["dynamic_batching"]["max_queue_delay_microseconds"] == "500"
    assert net["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]


def test_a_non_empty_folder_or_a_file_is_refused_and_left_as_it_was(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        write_triton_repository(DEMO, taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"
    model = tmp_path / "m.onnx"
    shutil.copyfile(DEMO, model)
    with pytest.raises(OutputError, match="not a folder"):
        write_triton_repository(model, model)
    assert model.read_bytes() == DEMO.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_triton_repository(DEMO, empty).path == empty and (empty / "README.md").exists()
    assert _leftovers(tmp_path) == []


def test_a_failed_write_leaves_no_repository_and_no_temporary_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(triton_repo.shutil, "copyfile", broken)
    with pytest.raises(OutputError, match="No space left"):
        write_triton_repository(DEMO, tmp_path / "repo")
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    for kwargs, match in (({"max_batch": 0}, "max_batch"), ({"kind": "tpu"}, "kind"), ({"conf": 2}, "conf"),
                          ({"classes": [7]}, "not classes"), ({"name": "a b"}, "ensemble name")):
        with pytest.raises(ConfigError, match=match):
            write_triton_repository(DEMO, tmp_path / "repo", **kwargs)
    with pytest.raises(ModelFormatError, match="export a checkpoint first"):
        write_triton_repository(__file__, tmp_path / "repo")
    assert list(tmp_path.iterdir()) == []


def test_an_ultralytics_engine_becomes_a_plain_plan(tmp_path):
    """Without TensorRT here, an engine's metadata header gives what the repository needs; Triton gets the plan
    without that header (it deserializes the file as is)."""
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed: it would try to deserialize the made-up engine")
    except ImportError:
        pass
    meta = json.dumps({"task": "segment", "imgsz": [320, 320], "stride": 32, "batch": 1,
                       "names": {"0": "circle", "1": "rectangle"}}).encode()
    plan = b"\x00PLAN" * 100
    engine = tmp_path / "m.engine"
    engine.write_bytes(struct.pack("<i", len(meta)) + meta + plan)
    with pytest.raises(ConfigError, match="GPU only"):
        write_triton_repository(engine, tmp_path / "cpu", kind="cpu")
    repo = write_triton_repository(engine, tmp_path / "repo")
    assert repo.network_backend == "tensorrt"
    assert (repo.path / "edgeseg_network/1/model.plan").read_bytes() == plan
    assert any("TensorRT could not open it here" in note for note in repo.notes)
    config = (repo.path / "edgeseg_network/config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in config and "dims: [ 1, 3, 320, 320 ]" in config
    assert engine.read_bytes()[4 + len(meta) :] == plan  # the engine itself untouched

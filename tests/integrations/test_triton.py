"""Triton: the PyTriton binding and the client (edgeseg.integrations.triton), and the Python-backend stages a written
repository runs (edgeseg.integrations.triton_models).

The servers run in the Triton test environment (tests/helpers/triton_env.py: PyTriton's bundled tritonserver needs
NumPy < 2), made once and cached; its tests skip with the reason when it cannot be made. The rest runs here: the
stages with a stand-in for Triton's Python-backend module, the answer format and its way back to Results."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from edgeseg import ConfigError, Segmenter
from edgeseg.assets import demo_model_path
from edgeseg.inputs.images import read_image
from edgeseg.integrations.triton import TritonClient, results_from_answer, rle_decode, start_triton
from edgeseg.integrations.triton_models import (
    DETECTIONS,
    IMAGE,
    LETTERBOX,
    SOURCE_NAME,
    PostprocessModel,
    PreprocessModel,
    answer,
)
from edgeseg.outputs.coco import encode_rle
from tests.helpers.common import assert_same_results
from tests.helpers.triton_env import run_in_venv, venv_or_skip

DEMO = demo_model_path()


@pytest.fixture(scope="session")
def triton_python():
    return venv_or_skip()


@pytest.fixture(scope="module")
def images(val_images) -> list[str]:
    return [str(p) for p in val_images[:4]]


# ---- here -------------------------------------------------------------------------------------------------------


def test_import_edgeseg_and_the_triton_modules_imports_neither_pytriton_nor_tritonclient():
    code = ("import sys, argparse, edgeseg, edgeseg.integrations.triton, edgeseg.integrations.triton_models, "
            "edgeseg_export.triton_repo; "
            "sub = argparse.ArgumentParser().add_subparsers(); edgeseg.integrations.triton.add_command(sub); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pytriton', 'tritonclient', "
            "'triton_python_backend_utils')); assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_rle_decode_inverts_the_records_rle():
    rng = np.random.default_rng(3)
    for h, w in ((7, 5), (40, 33), (1, 9)):
        for _ in range(20):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            crop = (rng.random((rng.integers(1, h - y0 + 1), rng.integers(1, w - x0 + 1))) < 0.5).astype(np.uint8)
            full = np.zeros((h, w), np.uint8)
            full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
            counts = encode_rle(crop, (x0, y0), (h, w))["counts"]
            np.testing.assert_array_equal(rle_decode(counts, (h, w)), full)
    with pytest.raises(ConfigError, match="does not cover"):
        rle_decode(encode_rle(np.ones((2, 2), np.uint8), (0, 0), (4, 4))["counts"], (5, 4))


def test_an_answer_rebuilds_the_results_it_was_made_from(images):
    with Segmenter(DEMO) as seg:
        local = seg.predict(images)
    assert sum(len(r) for r in local) > 0
    for r in local:
        reply = json.loads(answer(r, 3))
        assert (reply["width"], reply["height"], reply["batch_size"]) == (r.orig_shape[1], r.orig_shape[0], 3)
        rebuilt = results_from_answer(reply, r.orig_img, dict(r.names), r.path)
        assert_same_results(rebuilt, r)
        assert rebuilt.to_records() == r.to_records()
        assert rebuilt.names == r.names


class _FakeBackendUtils(types.ModuleType):
    """What Triton's Python backend hands a model (triton_python_backend_utils), enough to run a stage here."""

    class Tensor:
        def __init__(self, name: str, array: np.ndarray):
            self.name, self.array = name, array

        def as_numpy(self) -> np.ndarray:
            return self.array

    class TritonError(Exception):
        pass

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.tensors = {t.name: t.array for t in output_tensors}
            self.error = error

    @staticmethod
    def get_input_tensor_by_name(request: dict, name: str):
        return _FakeBackendUtils.Tensor(name, request[name])


def _stage(cls, repo, model_name: str):
    """A stage initialized from the config.pbtxt the repository writer made (parsed into the JSON Triton passes)."""
    text = (repo / model_name / "config.pbtxt").read_text()
    value = text.split('string_value: "', 1)[1].rsplit('" }', 1)[0].replace('\\"', '"').replace("\\\\", "\\")
    stage = cls()
    stage.initialize({"model_config": json.dumps({"name": model_name, "parameters": {
        "edgeseg": {"string_value": value}}})})
    return stage


def test_the_python_stages_answer_as_a_local_segmenter(tmp_path, monkeypatch, images):
    """Pre-processing, the network (ONNX Runtime here) and post-processing as the repository's stages run them,
    request by request with one bad image among them: the good ones answer the local Segmenter's records."""
    from edgeseg_export.triton_repo import write_triton_repository

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _FakeBackendUtils("triton_python_backend_utils"))
    repo = write_triton_repository(DEMO, tmp_path / "repo", kind="cpu")
    pre = _stage(PreprocessModel, repo.path, "edgeseg_preprocess")
    post = _stage(PostprocessModel, repo.path, "edgeseg_postprocess")
    payloads = [open(p, "rb").read() for p in images] + [b"not an image"]
    prepared = pre.execute([{IMAGE: np.array([[data]], dtype=np.object_)} for data in payloads])
    assert prepared[-1].error is not None and "cannot decode" in str(prepared[-1].error)
    with Segmenter(DEMO) as seg:
        local = [seg.predict(p)[0] for p in images]
        outputs = [seg.infer(response.tensors["images"]) for response in prepared[:-1]]
    answered = post.execute([{"output0": out[0], "output1": out[1], LETTERBOX: response.tensors[LETTERBOX]}
                             for out, response in zip(outputs, prepared[:-1], strict=True)])
    for response, r in zip(answered, local, strict=True):
        assert response.error is None
        reply = json.loads(response.tensors[DETECTIONS].reshape(-1)[0])
        assert reply["batch_size"] == len(images)
        assert reply["objects"] == [{**row, "source": SOURCE_NAME} for row in r.to_records()]


def test_serving_on_pytriton_refuses_numpy_2_instead_of_answering_zeros():
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("this environment has NumPy < 2")
    with pytest.raises(ConfigError, match="NumPy < 2"):
        start_triton(DEMO)


def test_the_client_checks_its_url_before_connecting():
    with pytest.raises(ConfigError, match="grpc://host:port or http://host:port"):
        TritonClient("ftp://localhost:1")


# ---- in the Triton test environment -------------------------------------------------------------------------------


def test_pytriton_answers_concurrent_grpc_and_http_requests_as_a_local_segmenter(triton_python, images):
    """serve_triton with dynamic batching: 8 concurrent requests over gRPC and over HTTP, and raw uint8 arrays to
    the pixels model, answer what a local Segmenter finds, bit for bit; the requests ran in fewer executions than
    there were requests; TritonClient.infer rebuilds the same Results; a bad image is a SourceError."""
    out = run_in_venv(triton_python, "pytriton", "--model", str(DEMO), "--copies", "2", *images)
    assert out["numpy"].startswith("1.")
    local = out["local"]
    assert sum(len(rows) for rows in local) > 0
    for kind in ("grpc", "http"):
        answers = out[kind]
        for reply, rows in zip(answers, local * 2, strict=True):
            assert reply["objects"] == rows, kind
        executions = sum(1 / reply["batch_size"] for reply in answers)  # each execution answered batch_size requests
        assert max(reply["batch_size"] for reply in answers) > 1, kind
        assert executions < len(answers), kind
    for reply, rows in zip(out["pixels"], local, strict=True):
        assert reply["objects"] == rows
    with Segmenter(DEMO) as seg:  # this environment (NumPy 2) finds the very same objects
        for rebuilt, path, rows in zip(out["rebuilt"], images, local, strict=True):
            r = seg.predict(path)[0]
            assert rebuilt["xyxy"] == r.boxes.xyxy.tolist() and rebuilt["conf"] == r.boxes.conf.tolist()
            assert rebuilt["records"] == r.to_records() == [{**row, "source": path} for row in rows]
    assert out["bad_image"].startswith("SourceError") and "cannot decode" in out["bad_image"]


def test_the_written_repository_runs_in_tritonserver_as_a_local_segmenter(triton_python, shapes_dynamic_onnx,
                                                                          tmp_path, images):
    """A repository for a dynamic-batch model, its network stage played by a Python-backend model running ONNX
    Runtime (the bundled tritonserver has no onnxruntime backend): 8 concurrent requests through the ensemble
    answer what a local Segmenter finds, the post-processing batched them, the client reads the class names from
    the ensemble's config and rebuilds the Results; a bad image is its request's error only."""
    from edgeseg_export.triton_repo import write_triton_repository

    repo = write_triton_repository(shapes_dynamic_onnx, tmp_path / "repo", imgsz=320, kind="cpu")
    assert repo.max_batch_size == 8
    out = run_in_venv(triton_python, "repository", "--repo", str(repo.path), "--model", str(shapes_dynamic_onnx),
                      "--imgsz", "320", "--copies", "2", *images)
    local = out["local"]
    assert sum(len(rows) for rows in local) > 0
    for reply, rows in zip(out["answers"], local * 2, strict=True):
        assert reply["objects"] == rows
    assert max(reply["batch_size"] for reply in out["answers"]) > 1
    assert out["names"] == {"0": "circle", "1": "rectangle", "2": "triangle", "3": "hexagon", "4": "star"}
    assert out["rebuilt"] == [[{**row, "source": images[0]} for row in local[0]]]
    assert out["bad_image"].startswith("SourceError") and "cannot decode" in out["bad_image"]
    with Segmenter(shapes_dynamic_onnx, imgsz=320) as seg:  # and this environment's Segmenter agrees
        assert [[{**row, "source": SOURCE_NAME} for row in seg.predict(p)[0].to_records()] for p in images] == local
    assert read_image(images[0]).shape[:2] == (out["answers"][0]["height"], out["answers"][0]["width"])

"""edgeseg stage by stage, next to Ultralytics on the same ONNX file and a bare onnxruntime session.

Run: python -m pytest benchmarks -q   (groups: preprocess, inference, decode_nms, masks, postprocess,
total, cold_start). The network input is a fixed 640x640, so inference is timed on one scene only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scenes import MODEL, SCENES, Scene

from edgeseg.postprocess.cpu import decode_raw, to_input_frame, to_source


def _describe(benchmark, scene: Scene, found: int | None = None, **extra) -> None:
    benchmark.extra_info.update(scene=scene.name, width=scene.width, height=scene.height,
                                objects=scene.objects, conf=scene.conf, **extra)
    if found is not None:
        benchmark.extra_info["found"] = found


# --- preprocess: BGR frame -> (1, 3, 640, 640) float32 ---


@pytest.mark.benchmark(group="preprocess")
def test_preprocess_edgeseg(benchmark, scene, image, segmenter):
    _describe(benchmark, scene)
    benchmark(segmenter.preprocess, [image])


@pytest.mark.benchmark(group="preprocess")
def test_preprocess_ultralytics(benchmark, scene, image, ultralytics_predictor):
    _describe(benchmark, scene)
    benchmark(ultralytics_predictor.preprocess, [image])


# --- inference: one network run ---


@pytest.fixture(scope="session")
def network_input(segmenters):
    """(Segmenter, a copy of its input tensor) for the first scene: inference does not depend on the scene."""
    seg = segmenters[SCENES[0].conf]
    tensor, _ = seg.preprocess([SCENES[0].image()])
    return seg, tensor.copy()


@pytest.mark.benchmark(group="inference")
def test_inference_edgeseg(benchmark, network_input):
    seg, tensor = network_input
    benchmark.extra_info["input"] = list(tensor.shape)
    benchmark(seg.backend.infer, tensor)


@pytest.mark.benchmark(group="inference")
def test_inference_bare_onnxruntime(benchmark, network_input, session):
    _, tensor = network_input
    benchmark.extra_info["input"] = list(tensor.shape)
    benchmark(session.run, None, {session.get_inputs()[0].name: tensor})


@pytest.mark.benchmark(group="inference")
def test_inference_ultralytics(benchmark, network_input, yolo):
    _, tensor = network_input
    predictor = yolo.predictor
    im = torch.from_numpy(tensor)
    benchmark.extra_info["input"] = list(tensor.shape)
    with torch.inference_mode():
        benchmark(predictor.inference, im)


# --- postprocess, split into its two edgeseg stages and whole ---


@pytest.mark.benchmark(group="decode_nms")
def test_decode_nms_edgeseg(benchmark, scene, segmenter, stages):
    _describe(benchmark, scene, len(stages.found.conf))
    benchmark(decode_raw, stages.det, segmenter.num_classes, segmenter.config)


@pytest.mark.benchmark(group="masks")
def test_masks_edgeseg(benchmark, scene, stages):
    boxes, _ = to_source(stages.found, stages.protos, stages.letterbox)
    _describe(benchmark, scene, len(boxes))
    benchmark(to_source, stages.found, stages.protos, stages.letterbox)


@pytest.mark.benchmark(group="masks")
def test_masks_edgeseg_input_frame(benchmark, scene, stages):
    """retina_masks=False: masks left in the network's input frame (Ultralytics' default predict)."""
    boxes, _ = to_input_frame(stages.found, stages.protos, stages.letterbox)
    _describe(benchmark, scene, len(boxes), retina_masks=False)
    benchmark(to_input_frame, stages.found, stages.protos, stages.letterbox)


@pytest.mark.benchmark(group="postprocess")
def test_postprocess_edgeseg_input_frame(benchmark, scene, segmenter, stages):
    def postprocess():
        found = decode_raw(stages.det, segmenter.num_classes, segmenter.config)
        return to_input_frame(found, stages.protos, stages.letterbox)

    _describe(benchmark, scene, len(postprocess()[0]), retina_masks=False)
    benchmark(postprocess)


@pytest.mark.benchmark(group="postprocess")
def test_postprocess_ultralytics_input_frame(benchmark, scene, image, ultralytics_predictor):
    """Ultralytics' default predict (retina_masks=False), beside edgeseg's retina_masks=False."""
    predictor = ultralytics_predictor
    predictor.args.retina_masks = False
    try:
        with torch.inference_mode():
            im = predictor.preprocess([image])
            preds = predictor.inference(im)
            _describe(benchmark, scene, len(predictor.postprocess(preds, im, [image])[0]), retina_masks=False)
            benchmark(predictor.postprocess, preds, im, [image])
    finally:
        predictor.args.retina_masks = True


@pytest.mark.benchmark(group="postprocess")
def test_postprocess_edgeseg(benchmark, scene, segmenter, stages):
    def postprocess():
        found = decode_raw(stages.det, segmenter.num_classes, segmenter.config)
        return to_source(found, stages.protos, stages.letterbox)

    _describe(benchmark, scene, len(postprocess()[0]))
    benchmark(postprocess)


@pytest.mark.benchmark(group="postprocess")
def test_postprocess_ultralytics(benchmark, scene, image, ultralytics_predictor):
    predictor = ultralytics_predictor
    with torch.inference_mode():  # as in Ultralytics' own predict loop
        im = predictor.preprocess([image])
        preds = predictor.inference(im)
        _describe(benchmark, scene, len(predictor.postprocess(preds, im, [image])[0]), retina_masks=True)
        benchmark(predictor.postprocess, preds, im, [image])


# --- total: a frame in, results with source-resolution masks out ---


@pytest.mark.benchmark(group="total")
def test_total_edgeseg(benchmark, scene, image, segmenter):
    _describe(benchmark, scene, len(segmenter.predict(image)[0]))
    benchmark(segmenter.predict, image)


@pytest.mark.benchmark(group="total")
def test_total_ultralytics(benchmark, scene, image, yolo):
    def predict():
        return yolo.predict(image, conf=scene.conf, retina_masks=True, verbose=False)

    _describe(benchmark, scene, len(predict()[0]), retina_masks=True)
    benchmark(predict)


# --- cold start: a fresh process, import to first result: kernels as installed, and Numba's JIT with and without
# its on-disk cache ---

FIRST_RESULT = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from scenes import MODEL, SCENES
from edgeseg import Segmenter
Segmenter(MODEL).predict(SCENES[1].image())  # many objects: every kernel runs (NMS is skipped with none)
"""


def _first_result(cache_dir: Path, kernels: str) -> None:
    # NUMBA_CACHE_DIR keeps the JIT-compiled kernels out of the package's own __pycache__
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "EDGESEG_KERNELS": kernels}
    subprocess.run([sys.executable, "-c", FIRST_RESULT], env=env, check=True)


@pytest.mark.benchmark(group="cold_start")
def test_cold_start_compiled_at_install(benchmark, tmp_path):
    benchmark.extra_info["model"] = MODEL.name
    benchmark.pedantic(_first_result, args=(tmp_path, "aot"), rounds=3)


@pytest.mark.benchmark(group="cold_start")
def test_cold_start_empty_jit_cache(benchmark, tmp_path):
    benchmark.extra_info["model"] = MODEL.name
    benchmark.pedantic(_first_result, args=(tmp_path, "jit"), rounds=1)  # one round: a second would find the cache


@pytest.mark.benchmark(group="cold_start")
def test_cold_start_warm_jit_cache(benchmark, tmp_path):
    _first_result(tmp_path, "jit")  # fills the cache
    benchmark.extra_info["model"] = MODEL.name
    benchmark.pedantic(_first_result, args=(tmp_path, "jit"), rounds=2)

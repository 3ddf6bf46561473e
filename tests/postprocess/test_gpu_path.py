"""Segmenter(device="cuda") and its parts: the same Results as device="cpu" (under Numba's CUDA simulator, see
tests/helpers/cudasim.py: these runs check the GPU path's logic, not a GPU), the CudaError when there is no GPU, the
settings, and ONNX Runtime's IO binding (run here with onnxruntime's CPU device: the CUDA binding never ran)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cudasim

SIMULATED = cudasim.use_simulator()

from edgeseg import ConfigError, CudaError, PredictConfig, ProviderOptions, Segmenter  # noqa: E402
from edgeseg.app.synthetic import make_scene  # noqa: E402
from edgeseg.assets import __file__ as assets_init  # noqa: E402
from edgeseg.inputs.frames import Frame  # noqa: E402
from edgeseg.kernels.blend import blend_masks  # noqa: E402
from edgeseg.model.backends.onnxruntime import OnnxRuntimeBackend, provider_settings, resolve_providers  # noqa: E402
from edgeseg.outputs.annotate import (  # noqa: E402
    BoxAnnotator,
    LabelAnnotator,
    MaskAnnotator,
    OutlineAnnotator,
    compose,
    plot,
)
from edgeseg.results import DeviceMasks, Masks  # noqa: E402
from tests.helpers.common import assert_same_results  # noqa: E402

DEMO = Path(assets_init).parent / "shapes11n-seg-320.onnx"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_scene(128, 96, 3, seed=1).image


@pytest.fixture(scope="module")
def both(scene):
    """(CPU results, GPU results) of the demo model on one small scene."""
    with Segmenter(DEMO) as cpu, Segmenter(DEMO, device="cuda") as gpu:
        return cpu(scene)[0], gpu(scene)[0]


@pytest.fixture(scope="module")
def on_device(scene):
    """GPU results of the same scene with the masks left on the GPU (device_results=True)."""
    with Segmenter(DEMO, device="cuda", device_results=True) as seg:
        return seg(scene)[0]


def test_gpu_results_are_the_cpu_results(both):
    cpu, gpu = both
    assert len(cpu) >= 2 and isinstance(gpu.masks, Masks)  # host arrays by default
    assert_same_results(cpu, gpu)


def test_masks_left_on_the_device(on_device, both):
    cpu, _ = both
    result = on_device
    assert isinstance(result.masks, DeviceMasks) and not isinstance(result.masks.crops[0], np.ndarray)
    with pytest.raises(ConfigError, match=r"^isolate\(source='contour'\) works on masks in host memory.*to_host"):
        result.isolate(source="contour")  # outlines are traced on the host
    with pytest.raises(ConfigError, match="background must be one of"):
        result.isolate(background="white")
    assert_same_results(cpu, result.to_host())
    assert_same_results(cpu[1:], result[1:].to_host())


@pytest.mark.parametrize("background", ["black", "transparent"])
def test_isolating_masks_left_on_the_device_cuts_them_out_on_the_gpu(on_device, both, background):
    cpu, _ = both
    got = on_device[::-1].isolate(background)  # a selection: starts into the shared buffer, out of order
    want = cpu[::-1].isolate(background)
    assert len(got) == len(want) > 0 and all(isinstance(g, np.ndarray) for g in got)  # host cut-outs
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert on_device[:0].isolate(background) == []


def test_drawing_masks_left_on_the_device_says_to_copy_them_first(on_device, both):
    cpu, _ = both
    frame = on_device.orig_img.copy()
    for annotator, name in [(MaskAnnotator(), "MaskAnnotator"), (OutlineAnnotator(), "OutlineAnnotator"),
                            (compose(BoxAnnotator(), MaskAnnotator(), LabelAnnotator()), "MaskAnnotator")]:
        for results in (on_device, on_device[:0]):  # with no objects too: the first frame already says so
            with pytest.raises(ConfigError, match=rf"^{name} works on masks in host memory, .* on the GPU "
                                                  r"\(device_results=True\): call results.to_host\(\) first$"):
                annotator.annotate(frame, results, inplace=True)
    with pytest.raises(ConfigError, match=r"^plot works on masks in host memory"):
        plot(on_device)
    np.testing.assert_array_equal(frame, on_device.orig_img)  # nothing drawn before the error
    assert not np.array_equal(BoxAnnotator().annotate(frame, on_device), frame)  # boxes need no masks
    np.testing.assert_array_equal(plot(on_device.to_host()), plot(cpu))


@pytest.mark.parametrize("background, crop", [("black", True), ("transparent", True)])  # full frame: kernel tests
def test_cut_outs_on_the_gpu_are_the_cpu_cut_outs(both, background, crop):
    from edgeseg.postprocess.cuda import isolate_cuda

    cpu, gpu = both
    got = isolate_cuda(gpu, background=background, crop=crop)
    want = cpu.isolate(background, crop)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_mask_fill_on_the_gpu_is_the_cpu_fill(both):
    from numba import cuda

    from edgeseg.postprocess.cuda import fill_masks_cuda

    cpu, gpu = both
    colors = np.array([[255, 0, 0], [0, 200, 90], [10, 20, 30]])[: len(cpu)]
    want = blend_masks(cpu.orig_img.copy(), cpu.masks.crops, cpu.masks.origins, colors, 0.4)
    frame = cuda.to_device(gpu.orig_img)
    fill_masks_cuda(frame, gpu.masks, colors, 0.4)
    np.testing.assert_array_equal(frame.copy_to_host(), want)


def test_pipelined_stream_on_the_gpu(scene, both):
    cpu, _ = both
    with Segmenter(DEMO, device="cuda") as seg:
        frames = [Frame(scene, 0, "a", path="a"), Frame(scene[:, ::-1].copy(), 1, "b", path="b")]
        results = list(seg.stream_pipelined(frames))
    assert [r.path for r in results] == ["a", "b"]
    assert_same_results(cpu, results[0])


class _FixedBuffersOnTheGpu:
    """The network's outputs left in the same GPU buffers every run, as a TensorRT engine or a CUDA graph does."""

    outputs_on_gpu = outputs_reused = True

    def __init__(self, backend):
        self.backend, self.buffers = backend, None

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def infer_on_device(self, batch):
        from numba import cuda

        outputs = [np.ascontiguousarray(o) for o in self.backend.infer(batch)]
        if self.buffers is None:
            self.buffers = [cuda.device_array(o.shape, o.dtype) for o in outputs]
        for buffer, output in zip(self.buffers, outputs, strict=True):
            buffer.copy_to_device(output)  # overwrites what the previous run left there
        return list(self.buffers)


def test_pipeline_keeps_outputs_that_the_next_run_overwrites():
    # while the caller post-processes one frame, the network thread runs the next into the same buffers: the
    # pipeline must post-process its own copies (the simulator is slow enough that the network always runs ahead)
    frames = [Frame(make_scene(128, 96, 3, seed=10 + i).image, i, str(i), path=str(i)) for i in range(4)]
    with Segmenter(DEMO) as cpu:
        want = [cpu(frame.image)[0] for frame in frames]
    with Segmenter(DEMO, device="cuda") as seg:
        seg.backend = _FixedBuffersOnTheGpu(seg.backend)
        got = list(seg.stream_pipelined(frames, depth=2))
    assert [r.path for r in got] == [frame.path for frame in frames]
    assert sum(len(r) for r in want) > 0
    for a, b in zip(want, got, strict=True):
        assert_same_results(a, b)


def test_one_segmenter_frame_after_frame_of_other_sizes(both):
    # the GPU path reuses its buffers from frame to frame: frames of other sizes and object counts must not see
    # what the previous frame left there, and masks kept on the device must stay as they were
    cpu, _ = both
    frames = [make_scene(w, h, n, seed=20 + n).image for w, h, n in [(96, 128, 4), (128, 96, 1), (150, 70, 3)]]
    with Segmenter(DEMO) as ref:
        want = [ref(f)[0] for f in frames]
    assert sorted(len(r) for r in want)[-1] > sorted(len(r) for r in want)[0] > 0  # object counts differ
    with Segmenter(DEMO, device="cuda") as seg:
        for frame, expected in zip(frames, want, strict=True):
            assert_same_results(expected, seg(frame)[0])
    with Segmenter(DEMO, device="cuda", device_results=True) as seg:
        kept = [seg(f)[0] for f in frames]
    for result, expected in zip(kept, want, strict=True):
        assert_same_results(expected, result.to_host())


@pytest.mark.parametrize("fixture, settings", [
    ("shapes_nms_onnx", {}),
    ("shapes_dynamic_onnx", dict(batch=2, imgsz=160)),
    ("shapes_dynamic_onnx", dict(multi_label=True, classes=[0, 1, 3], imgsz=160)),
])  # fmt: skip
def test_other_models_and_settings_on_the_gpu_path(request, val_images, fixture, settings):
    # NMS in the graph, a dynamic batch of two images of other sizes, multi-label with a class filter (small inputs
    # and images: the simulator runs each GPU thread as Python)
    model = request.getfixturevalue(fixture)
    import cv2

    images = [cv2.resize(cv2.imread(str(val_images[3])), (160, 160)), cv2.resize(cv2.imread(str(val_images[4])),
                                                                                 (150, 110))]
    with Segmenter(model, **settings) as cpu, Segmenter(model, device="cuda", **settings) as gpu:
        want, got = cpu(images), gpu(images)
    assert sum(len(r) for r in want) > 0
    for a, b in zip(want, got, strict=True):
        assert_same_results(a, b)


def test_outputs_kept_for_the_pipeline_are_float32_buffers_of_their_own():
    from numba import cuda

    with Segmenter(DEMO, device="cuda") as seg:
        values = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
        half, single = cuda.to_device(values.astype(np.float16)), cuda.to_device(values)
        kept = seg._gpu.keep([half, single, values])
        for buffer in (half, single):  # the next run overwrites the network's buffers
            buffer.copy_to_device(np.zeros((3, 4), buffer.dtype))
    for array in kept:
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array.copy_to_host(), values)


def test_benchmark_times_the_gpu_path_beside_the_cpu_one():
    from edgeseg.app.benchmark import run_benchmark
    from edgeseg.app.benchmark.stages import EDGESEG_STAGES

    report = run_benchmark(DEMO, synthetic=(128, 96), objects=3, devices=["cpu", "cuda"], warmup=0, iters=1,
                           progress=False, startup=False)
    cpu, gpu = report["runs"]
    assert (cpu["device"], gpu["device"]) == ("cpu", "cuda") and gpu["name"].endswith("post-processing on cuda")
    assert gpu["objects_per_frame"] == cpu["objects_per_frame"] > 0  # the same detections on both sides
    assert set(gpu["stages"]) == set(EDGESEG_STAGES)
    assert all(gpu["stages"][stage]["mean"] > 0 for stage in ("decode_nms", "masks", "isolation"))
    assert report["settings"]["devices"] == ["cpu", "cuda"]


def test_compare_gpu_script_runs_end_to_end_in_a_dry_run():
    # the script's first real run will be on a lent GPU with minutes to spare: its logic is checked here, on the
    # simulator and PyTorch's CPU (the timings mean nothing)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", YOLO_OFFLINE="1")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare_gpu.py"), "--dry-run", "--objects", "3",
                          "--size", "128x96", "--imgsz", "64", "--iters", "1", "--warmup", "0"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    kept = re.search(r"3 objects: kept (\d+) \(edgeseg cuda\), (\d+) \(edgeseg cpu\)", out.stdout)
    assert kept and kept[1] == kept[2] and int(kept[1]) > 0
    table = [line.split() for line in out.stdout.splitlines() if line.startswith("      3 ")]
    assert [(row[1], " ".join(row[2:-4])) for row in table] == [
        (end, name) for end in ("masks", "isolated") for name in ("edgeseg cuda", "edgeseg cpu",
                                                                  "ultralytics torch cuda")]


def test_no_gpu_is_a_cuda_error_not_a_fallback(tmp_path):
    # a fresh process without the simulator, on this machine: a GPU-less machine must say so
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, edgeseg\n"
            "assert 'numba.cuda' not in sys.modules, 'import edgeseg imported numba.cuda'\n"
            "from numba import cuda\n"
            "if cuda.is_available(): print('HAS-GPU'); sys.exit(0)\n"
            f"try:\n    edgeseg.Segmenter({str(DEMO)!r}, device='cuda')\n"
            "except edgeseg.CudaError as e: print('CudaError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    if "HAS-GPU" in out.stdout:
        pytest.skip("this machine has a GPU Numba can use")
    message = out.stdout.strip()
    assert message.startswith("CudaError: device='cuda' needs a CUDA GPU") and "device='cpu'" in message
    assert "\n" not in message  # one line


def test_import_edgeseg_does_not_import_numba_cuda():
    out = subprocess.run([sys.executable, "-c", "import sys, edgeseg; print('numba.cuda' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("settings, message", [
    (dict(device="gpu"), "device must be one of cpu, cuda"),
    (dict(device_results=True), "needs device='cuda'"),
    (dict(provider_options=dict(enable_cuda_graph=True)), "enable_cuda_graph needs device='cuda'"),
    (dict(device="cuda", device_results="yes"), "device_results must be true or false"),
])
def test_bad_device_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        PredictConfig(**settings)


def test_device_from_yaml(tmp_path):
    from edgeseg.config import load_config

    path = tmp_path / "gpu.yaml"
    path.write_text("device: cuda\ndevice_results: true\nprovider_options:\n  enable_cuda_graph: true\n")
    cfg = load_config(path)
    assert (cfg.device, cfg.device_results, cfg.provider_options.enable_cuda_graph) == ("cuda", True, True)


def test_cuda_graph_option_reaches_both_gpu_providers(caplog):
    options = ProviderOptions(enable_cuda_graph=True, device_id=1)
    assert provider_settings("CUDAExecutionProvider", options) == {"device_id": 1, "enable_cuda_graph": True}
    assert provider_settings("TensorrtExecutionProvider", options) == {"device_id": 1, "trt_cuda_graph_enable": True}
    assert provider_settings("CPUExecutionProvider", options) == {}
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level("WARNING", logger="edgeseg"):
        assert resolve_providers(["cuda"], everything, options) == [
            ("CUDAExecutionProvider", {"device_id": 1, "enable_cuda_graph": True})]
        assert not caplog.records  # the graph option is not a TensorRT-only option
        resolve_providers(["cpu"], everything, options)
    assert "enable_cuda_graph has no effect" in caplog.text


def test_cli_device_is_one_switch():
    from edgeseg.app.cli import build_parser, predict_config

    def config(*flags):
        return predict_config(build_parser().parse_args(["predict", "--model", "m.onnx", "--source", "x", *flags]))

    assert (config("--device", "cuda:1").device, config("--device", "cuda:1").providers) == ("cuda", ("cuda:1",))
    assert config("--device", "tensorrt").device == "cuda"
    assert (config("--device", "cpu").device, config().device) == ("cpu", "cpu")


def test_io_binding_leaves_outputs_where_the_provider_runs():
    # onnxruntime here is CPU-only: the binding runs with its CPU device; the 'cuda' device binding never ran
    from edgeseg.postprocess.gpu import as_device_array

    backend = OnnxRuntimeBackend(DEMO, providers=["cpu"])
    assert not backend.outputs_on_gpu and backend.binding_device == ("cpu", 0)
    batch = np.random.default_rng(0).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    want = backend.infer(batch)
    first = backend.infer_on_device(batch)
    second = backend.infer_on_device(batch * 0.5)  # the input buffer is reused; earlier outputs stay valid
    assert [v.device_name().lower() for v in first] == ["cpu", "cpu"]
    for value, expected in zip(first, want, strict=True):
        np.testing.assert_array_equal(value.numpy(), expected)
    assert not np.array_equal(second[0].numpy(), first[0].numpy())
    with pytest.raises(CudaError, match="lives on 'cpu'"):
        as_device_array(first[0])
    backend.close()

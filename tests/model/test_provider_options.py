"""GPU provider options: validated settings, onnxruntime's (provider, options) tuples, YAML, the Segmenter and the CLI.
No provider but the CPU runs here: what is tested is what edgeseg hands to onnxruntime."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg import ConfigError, PredictConfig, ProviderError, Segmenter, load_config
from edgeseg.app.cli import build_parser, predict_config
from edgeseg.config import ProviderOptions
from edgeseg.errors import OutputError
from edgeseg.model.backends.onnxruntime import make_cache_folders, provider_settings, resolve_providers
from tests.helpers.common import edgeseg_cli

EVERYTHING = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
REPO = Path(__file__).resolve().parents[2]


def test_defaults_leave_onnxruntime_defaults():
    assert resolve_providers("auto", EVERYTHING, ProviderOptions()) == EVERYTHING
    assert resolve_providers(["tensorrt", "cuda:1"], EVERYTHING) == [
        "TensorrtExecutionProvider", ("CUDAExecutionProvider", {"device_id": 1})]


def test_tensorrt_and_cuda_option_dicts(tmp_path):
    options = ProviderOptions(device_id=1, trt_fp16=True, trt_int8=True, trt_engine_cache=tmp_path / "engines",
                              trt_timing_cache=str(tmp_path / "timing"), trt_workspace_gib=2,
                              cudnn_conv_algo_search="heuristic")
    assert resolve_providers("auto", EVERYTHING, options) == [
        ("TensorrtExecutionProvider", {
            "device_id": 1,
            "trt_fp16_enable": True,
            "trt_int8_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(tmp_path / "engines"),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(tmp_path / "timing"),
            "trt_max_workspace_size": 2 * 1024**3,
        }),
        ("CUDAExecutionProvider", {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"}),
        "CPUExecutionProvider",
    ]
    assert provider_settings("CPUExecutionProvider", options) == {}


def test_device_index_in_the_name_and_in_the_options():
    assert resolve_providers(["cuda:1"], EVERYTHING, ProviderOptions(trt_fp16=True, cudnn_conv_algo_search="DEFAULT")) \
        == [("CUDAExecutionProvider", {"device_id": 1, "cudnn_conv_algo_search": "DEFAULT"})]
    assert resolve_providers(["tensorrt:2"], EVERYTHING, ProviderOptions(device_id=2)) == [
        ("TensorrtExecutionProvider", {"device_id": 2})]
    with pytest.raises(ProviderError, match="asks for GPU 1 but device_id is 0"):
        resolve_providers(["cuda:1"], EVERYTHING, ProviderOptions(device_id=0))


def test_tensorrt_options_without_tensorrt_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        assert resolve_providers(["cuda"], EVERYTHING, ProviderOptions(trt_fp16=True, device_id=0)) == [
            ("CUDAExecutionProvider", {"device_id": 0})]
    assert any("trt_fp16_enable" in m and "no effect" in m for m in caplog.messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeseg"):  # 'auto' on a machine without TensorRT: no noise
        resolve_providers("auto", ["CPUExecutionProvider"], ProviderOptions(trt_fp16=True))
    assert not caplog.messages


def test_cache_folders_are_created(tmp_path):
    chosen = resolve_providers(["tensorrt", "cpu"], EVERYTHING, ProviderOptions(
        trt_engine_cache=tmp_path / "a" / "engines", trt_timing_cache=tmp_path / "b" / "timing"))
    make_cache_folders(chosen)
    assert (tmp_path / "a" / "engines").is_dir() and (tmp_path / "b" / "timing").is_dir()
    make_cache_folders(chosen)  # again: already there
    blocker = tmp_path / "file"
    blocker.write_text("")
    chosen = resolve_providers(["tensorrt"], EVERYTHING, ProviderOptions(trt_engine_cache=blocker / "engines"))
    with pytest.raises(OutputError, match="cannot create the TensorRT cache folder"):
        make_cache_folders(chosen)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(device_id=-1), "device_id"),
    (dict(device_id="0"), "device_id"),
    (dict(device_id=True), "device_id"),
    (dict(trt_fp16="yes"), "trt_fp16 must be true or false"),
    (dict(trt_int8=1), "trt_int8 must be true or false"),
    (dict(trt_engine_cache=""), "trt_engine_cache must be a folder"),
    (dict(trt_timing_cache=5), "trt_timing_cache must be a folder"),
    (dict(trt_workspace_gib=0), "trt_workspace_gib"),
    (dict(trt_workspace_gib="4"), "trt_workspace_gib"),
    (dict(cudnn_conv_algo_search="fast"), "EXHAUSTIVE, HEURISTIC, DEFAULT"),
    (dict(cpu_threads=0), "cpu_threads must be a number of threads"),
    (dict(cpu_threads=1.5), "cpu_threads must be a number of threads"),
    (dict(trt_fp32=True), "unknown setting.*trt_fp32.*known: cpu_spinning, cpu_threads, cudnn_conv_algo_search"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        PredictConfig(provider_options=settings)


def test_settings_from_yaml(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text("providers: [tensorrt, cuda, cpu]\nprovider_options:\n  trt_fp16: true\n"
                      "  trt_engine_cache: trt-engines\n  device_id: 0\n")
    cfg = load_config(config)
    assert cfg.providers == ("tensorrt", "cuda", "cpu")
    assert cfg.provider_options == ProviderOptions(trt_fp16=True, trt_engine_cache="trt-engines", device_id=0)
    assert load_config(REPO / "edgeseg" / "configs" / "default.yaml").provider_options == ProviderOptions()
    config.write_text("provider_options: [trt_fp16]\n")
    with pytest.raises(ConfigError, match="provider_options must be a mapping"):
        load_config(config)


def test_segmenter_takes_provider_options(shapes_onnx, tmp_path):
    cache = tmp_path / "engines"
    seg = Segmenter(shapes_onnx, provider_options={"trt_fp16": True, "trt_engine_cache": str(cache)})
    assert seg.config.provider_options.trt_fp16 and seg.providers[-1] == "CPUExecutionProvider"
    assert not cache.exists()  # only made when TensorRT is among the providers
    same = Segmenter.from_config(shapes_onnx, seg.config)
    assert same.config.provider_options == seg.config.provider_options
    with pytest.raises(ProviderError, match="'tensorrt' is not available"):
        Segmenter(shapes_onnx, providers=["tensorrt"], provider_options=ProviderOptions(trt_fp16=True))


def test_cli_flags_override_the_file(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text("provider_options:\n  trt_engine_cache: from-file\n  trt_timing_cache: timing\n")
    parse = build_parser().parse_args
    base = ["predict", "--model", "m.onnx", "--source", "x.jpg"]
    assert predict_config(parse(base)).provider_options == ProviderOptions()
    cfg = predict_config(parse([*base, "--config", str(config), "--trt-fp16", "--trt-cache", "from-flag"]))
    assert cfg.provider_options == ProviderOptions(trt_fp16=True, trt_engine_cache="from-flag",
                                                   trt_timing_cache="timing")
    cfg = predict_config(parse([*base, "--config", str(config)]))
    assert cfg.provider_options.trt_engine_cache == "from-file" and not cfg.provider_options.trt_fp16


def test_cli_tensorrt_flags_on_a_cpu_run(shapes_onnx, val_images, tmp_path):
    cache = tmp_path / "trt-cache"
    done = subprocess.run([sys.executable, "-m", "edgeseg", "predict", "--model", str(shapes_onnx), "--source",
                           str(val_images[0]), "--device", "cpu", "--trt-fp16", "--trt-cache", str(cache)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "have no effect: TensorRT is not among the providers cpu" in done.stderr
    assert "on CPUExecutionProvider" in done.stdout and not cache.exists()


def test_cpu_spinning_is_a_session_setting(shapes_onnx):
    from edgeseg import ConfigError, ProviderOptions, Segmenter

    quiet = Segmenter(shapes_onnx, provider_options={"cpu_spinning": False})
    entries = quiet.backend._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    assert entries == "0"
    default = Segmenter(shapes_onnx).backend._session.get_session_options()
    try:  # not set at all leaves ONNX Runtime's own default, which spins
        assert default.get_session_config_entry("session.intra_op.allow_spinning") != "0"
    except RuntimeError:
        pass
    with pytest.raises(ConfigError, match="cpu_spinning"):
        ProviderOptions(cpu_spinning="no")


def test_cpu_threads_sets_onnxruntime_intra_op_threads(shapes_onnx, val_images):
    one = Segmenter(shapes_onnx, provider_options={"cpu_threads": 1})
    assert one.backend._session.get_session_options().intra_op_num_threads == 1
    assert Segmenter(shapes_onnx).backend._session.get_session_options().intra_op_num_threads == 0  # ORT decides
    done = edgeseg_cli("predict", "--model", str(shapes_onnx), "--source", str(val_images[0]), "--threads", "0")
    assert done.returncode == 1 and "cpu_threads must be a number of threads" in done.stderr

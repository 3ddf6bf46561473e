"""The Triton tests' own environment: a virtual environment with PyTriton (its bundled tritonserver, Python backend
only), tritonclient and NumPy < 2, made once and kept in a cache folder, and the checks that run inside it.

PyTriton 0.7 needs NumPy < 2 (under NumPy 2 it answers zeroed tensors) while the project's environment has NumPy 2:
so the servers and clients run in that environment, in a subprocess, and hand their answers back as JSON for the
tests to compare. edgeseg is put on the environment's path with PYTHONPATH (this checkout), not installed: an
editable install would rebuild the compiled kernels inside the shared source tree.

    ensure_venv() -> the venv's python (or raises VenvUnavailable with why)
    python -m tests.helpers.triton_env pytriton|repository|configs ...     (run by that python, with PYTHONPATH)

This module imports only the standard library and NumPy at the top: the venv runs it as a script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_ENV = "EDGESEG_TRITON_VENV"
DEFAULT_VENV = Path.home() / ".cache" / "edgeseg-triton-venv"
# what the venv holds: edgeseg's runtime dependencies under NumPy < 2 (OpenCV 4.12 needs NumPy 2), PyTriton and the
# clients. The marker file records this list: a venv made from another one is made again.
REQUIREMENTS = ("numpy<2", "opencv-python-headless<4.12", "numba>=0.59", "onnxruntime>=1.17", "pyyaml>=6",
                "scipy>=1.10", "nvidia-pytriton==0.7.0", "tritonclient[grpc,http]")
MARKER = "edgeseg-triton-env.json"
INSTALL_TIMEOUT_S = 900
_VENV_OUTCOME: Path | VenvUnavailable | None = None  # venv_or_skip's answer, once made


class VenvUnavailable(RuntimeError):
    """The Triton environment cannot be made here; the message says why (tests skip with it)."""


def venv_folder() -> Path:
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)


def venv_python(folder: Path | None = None) -> Path:
    return (folder or venv_folder()) / "bin" / "python"


def ensure_venv() -> Path:
    """The Triton venv's python: reused when its marker matches REQUIREMENTS, else made (under a temporary name,
    renamed when complete, so an interrupted install leaves nothing half-made). VenvUnavailable says why not."""
    if sys.version_info[:2] > (3, 12):
        raise VenvUnavailable(f"nvidia-pytriton 0.7 has no Python backend stub for Python "
                              f"{sys.version_info[0]}.{sys.version_info[1]}")
    if not sys.platform.startswith("linux"):
        raise VenvUnavailable("PyTriton's tritonserver runs on Linux only")
    folder = venv_folder()
    wanted = {"requirements": list(REQUIREMENTS), "python": sys.version.split()[0]}
    with contextlib.suppress(OSError, ValueError):
        if json.loads((folder / MARKER).read_text()) == wanted and venv_python(folder).exists():
            return venv_python(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    try:
        _run([sys.executable, "-m", "venv", str(work)], "creating the venv")
        # pip writes the venv's own paths into its scripts: python -m pip is used throughout, which survives the rename
        _run([str(venv_python(work)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *REQUIREMENTS],
             "installing PyTriton and edgeseg's dependencies (needs the package registry)")
        (work / MARKER).write_text(json.dumps(wanted))
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return venv_python(folder)


def venv_or_skip() -> Path:
    """ensure_venv(), or the calling test skipped with the reason it cannot be made here (imports pytest: call it
    from the tests' fixtures only)."""
    import pytest

    global _VENV_OUTCOME
    if _VENV_OUTCOME is None:  # tried once per process: a registry out of reach is not waited for twice
        try:
            _VENV_OUTCOME = ensure_venv()
        except VenvUnavailable as e:
            _VENV_OUTCOME = e
    if isinstance(_VENV_OUTCOME, VenvUnavailable):
        pytest.skip(f"no Triton test environment in {venv_folder()} (set {VENV_ENV} to place it): {_VENV_OUTCOME}")
    return _VENV_OUTCOME


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VenvUnavailable(f"{what} failed: {e}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if "is ignored" not in line]
        raise VenvUnavailable(f"{what} failed: {' | '.join(lines[-3:])}")


def venv_env() -> dict[str, str]:
    """The environment a venv subprocess runs with: this checkout on PYTHONPATH, its own Numba cache, and the
    interpreter's libdir on LD_LIBRARY_PATH (PyTriton's Python backend stub needs it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["NUMBA_CACHE_DIR"] = str(venv_folder() / "numba-cache")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def run_in_venv(python: Path, *args: str, timeout_s: float = 180) -> dict:
    """Runs `python -m tests.helpers.triton_env *args` in the venv; returns the JSON it prints last."""
    done = subprocess.run([str(python), "-m", "tests.helpers.triton_env", *args], cwd=REPO, env=venv_env(),
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"venv check {args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- inside the venv -----------------------------------------------------------------------------------------------

# The network stage played by a Python-backend model running ONNX Runtime on the CPU: the bundled tritonserver has
# no onnxruntime backend. It runs every request of a batch as one network run, as the onnxruntime backend does.
NETWORK_STANDIN = '''
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.outputs = [o["name"] for o in config["output"]]
        model = Path(__file__).with_name("model.onnx")
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.runs = []

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        outputs = self.session.run(self.outputs, {self.input: np.concatenate(batches)})
        self.runs.append(len(requests))
        responses, start = [], 0
        for b in batches:
            part = [pb_utils.Tensor(n, np.ascontiguousarray(o[start:start + len(b)]))
                    for n, o in zip(self.outputs, outputs, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=part))
            start += len(b)
        return responses
'''


def network_as_python_model(repo: Path, network: str) -> None:
    """Turns the repository's onnxruntime network stage into the Python-backend stand-in (same tensors, same
    batching; on the CPU)."""
    config = repo / network / "config.pbtxt"
    text = config.read_text()
    if 'backend: "onnxruntime"' not in text:
        raise ValueError(f"{config} is not an onnxruntime model")
    config.write_text(text.replace('backend: "onnxruntime"', 'backend: "python"').replace("KIND_GPU", "KIND_CPU"))
    (repo / network / "1" / "model.py").write_text(NETWORK_STANDIN)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _local_answers(model: str, images: list[str], settings: dict) -> list[list[dict]]:
    """A local Segmenter's records for each image (source set as the server names uploads)."""
    from edgeseg import Segmenter
    from edgeseg.integrations.triton_models import SOURCE_NAME

    with Segmenter(model, **settings) as seg:
        out = []
        for path in images:
            rows = seg.predict(path)[0].to_records()
            out.append([{**row, "source": SOURCE_NAME} for row in rows])
        return out


def check_pytriton(model: str, images: list[str], copies: int) -> dict:
    """serve_triton's two models asked concurrently over gRPC (TritonClient: records and Results) and HTTP, and the
    pixels model with raw arrays; plus a local Segmenter's records for the same images."""
    import cv2
    import numpy as np
    import tritonclient.grpc as grpcclient

    from edgeseg.integrations.triton import TritonClient, start_triton

    http, grpc, metrics = free_ports(3)
    many = images * copies
    triton = start_triton(model, http_port=http, grpc_port=grpc, metrics_port=metrics, max_batch_size=8,
                          queue_delay_us=50_000, threads=1)
    try:
        with TritonClient(f"localhost:{grpc}", concurrency=len(many)) as client:
            t0 = time.perf_counter()
            grpc_answers = client.records(many)
            grpc_s = time.perf_counter() - t0
            results = client.infer(images)
        with TritonClient(f"http://localhost:{http}", concurrency=len(many)) as client:
            http_answers = client.records(many)
        pixels = []
        raw = grpcclient.InferenceServerClient(f"localhost:{grpc}")
        for path in images:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            tensor = grpcclient.InferInput("IMAGE", [1, *image.shape], "UINT8")
            tensor.set_data_from_numpy(image[None])
            reply = raw.infer("edgeseg_pixels", [tensor])
            pixels.append(json.loads(reply.as_numpy("DETECTIONS").reshape(-1)[0]))
        bad = client_error(f"localhost:{grpc}")
        raw.close()
    finally:
        triton.stop()
    rebuilt = [{"xyxy": r.boxes.xyxy.tolist(), "conf": r.boxes.conf.tolist(), "cls": r.boxes.cls.tolist(),
                "records": r.to_records()} for r in results]
    return {"grpc": grpc_answers, "grpc_s": grpc_s, "http": http_answers, "pixels": pixels, "rebuilt": rebuilt,
            "local": _local_answers(model, images, {}), "bad_image": bad, "numpy": np.__version__}


def client_error(url: str) -> str:
    """What TritonClient.infer raises for bytes that are not an image."""
    from edgeseg.errors import EdgesegError
    from edgeseg.integrations.triton import TritonClient

    with TritonClient(url) as client:
        try:
            client.infer([b"not an image"])
        except EdgesegError as e:
            return f"{type(e).__name__}: {e}"
    return "no error"


def check_repository(repo: str, model: str, images: list[str], copies: int, imgsz: int | None) -> dict:
    """The written repository (network stage swapped for the Python stand-in) served by the bundled tritonserver,
    asked concurrently through the ensemble; plus a local Segmenter's records for the same images."""
    from pytriton.triton import Triton, TritonConfig

    from edgeseg.integrations.triton import TritonClient, python_libdir_on_library_path

    network_as_python_model(Path(repo), "edgeseg_network")
    python_libdir_on_library_path()
    http, grpc, metrics = free_ports(3)
    many = images * copies
    triton = Triton(config=TritonConfig(model_repository=Path(repo), http_port=http, grpc_port=grpc,
                                        metrics_port=metrics, http_address="127.0.0.1", grpc_address="127.0.0.1"))
    triton.run()
    try:
        with TritonClient(f"localhost:{grpc}", concurrency=len(many)) as client:
            answers = client.records(many)
            names = client.names()
            results = client.infer(images[:1])
        bad = client_error(f"localhost:{grpc}")
    finally:
        triton.stop()
    settings = {"imgsz": imgsz} if imgsz else {}
    return {"answers": answers, "names": {str(k): v for k, v in names.items()}, "bad_image": bad,
            "rebuilt": [r.to_records() for r in results], "local": _local_answers(model, images, settings)}


def check_configs(repo: str) -> dict:
    """Each config.pbtxt of the repository parsed as Triton's ModelConfig (tritonclient's model_config_pb2)."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    out = {}
    for path in sorted(Path(repo).glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        out[path.parent.name] = json_format.MessageToDict(config, preserving_proto_field_name=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.helpers.triton_env")
    sub = parser.add_subparsers(dest="check", required=True)
    p = sub.add_parser("pytriton")
    p.add_argument("--model", required=True)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("images", nargs="+")
    p = sub.add_parser("repository")
    p.add_argument("--repo", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--imgsz", type=int)
    p.add_argument("images", nargs="+")
    p = sub.add_parser("configs")
    p.add_argument("--repo", required=True)
    args = parser.parse_args(argv)
    if args.check == "pytriton":
        out = check_pytriton(args.model, args.images, args.copies)
    elif args.check == "repository":
        out = check_repository(args.repo, args.model, args.images, args.copies, args.imgsz)
    else:
        out = check_configs(args.repo)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

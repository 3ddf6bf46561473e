"""Ray Serve: the HTTP pool on a local two-CPU Ray cluster answers one request with the rows of a local run, batches
concurrent requests without mixing their answers, and turns bad uploads into HTTP 400 with one line."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
requests = pytest.importorskip("requests")

from edgeseg import ProviderOptions, Segmenter  # noqa: E402
from edgeseg.integrations.serve import start  # noqa: E402

MAX_BYTES = 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(shapes_onnx):
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    try:
        # a batch waits up to 50 ms for more requests: long enough that concurrent ones meet on this small machine
        yield start(shapes_onnx, port=free_port(), cpus_per_replica=0.5, threads=1, max_batch_size=8,
                    batch_wait_timeout_s=0.05, max_bytes=MAX_BYTES)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def local(shapes_onnx):
    with Segmenter(shapes_onnx, provider_options=ProviderOptions(cpu_threads=1)) as seg:
        yield seg


def expected_rows(seg: Segmenter, path, source: str) -> list[dict]:
    return [{**row, "source": source} for row in seg.predict(str(path))[0].to_records()]


def test_one_request_gives_the_rows_of_a_local_run(url, local, val_images):
    data = val_images[0].read_bytes()
    body = requests.post(url, data=data, timeout=60)
    assert body.status_code == 200
    answer = body.json()
    assert (answer["source"], answer["width"], answer["height"], answer["batch_size"]) == ("upload", 320, 320, 1)
    assert answer["objects"] and answer["objects"] == expected_rows(local, val_images[0], "upload")
    upload = requests.post(url, files={"image": (val_images[0].name, data, "image/jpeg")}, timeout=60).json()
    assert upload["objects"] == expected_rows(local, val_images[0], val_images[0].name)


def test_polygons_are_the_outlines_of_a_local_run(url, local, val_images):
    answer = requests.post(f"{url}?polygons=1&name=a.jpg", data=val_images[1].read_bytes(), timeout=60).json()
    result = local.predict(str(val_images[1]))[0]
    assert len(answer["objects"]) == len(result) > 0
    for got, row, outline in zip(answer["objects"], result.to_records(), result.masks.xy, strict=True):
        assert "mask_counts" not in got and got["source"] == "a.jpg"
        assert got["score"] == row["score"] and got["x1"] == row["x1"]
        np.testing.assert_array_equal(np.array(got["polygon"], np.float32), outline)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(url, local, val_images):
    images = val_images[:4]
    expected = {p.name: expected_rows(local, p, p.name) for p in images}
    jobs = [images[k % len(images)] for k in range(32)]

    def send(path):
        return requests.post(f"{url}?name={path.name}", data=path.read_bytes(), timeout=120).json()

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(send, jobs))
    for path, answer in zip(jobs, answers, strict=True):
        assert answer["source"] == path.name and answer["objects"] == expected[path.name]
    sizes = [a["batch_size"] for a in answers]
    assert max(sizes) > 1 and all(1 <= s <= 8 for s in sizes), sizes


@pytest.mark.parametrize(("body", "query", "message"), [
    (b"\xff\xd8\xff\xe0 this is no JPEG", "", "cannot decode upload as an image"),
    (b"", "", "upload is empty"),
    (b"x" * (MAX_BYTES + 1), "", "over the 1 MiB limit"),
    (b"x", "?polygons=maybe", "?polygons=maybe: give 1 or 0"),
])
def test_a_bad_upload_is_a_400_with_one_line(url, body, query, message):
    answer = requests.post(url + query, data=body, timeout=60)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in answer.text


def test_a_multipart_body_without_a_file_and_a_get_are_refused(url):
    answer = requests.post(url, files={"field": (None, "value")}, timeout=60)  # a text field, no file
    assert answer.status_code == 400 and "holds no file" in answer.json()["error"]
    assert requests.get(url, timeout=60).status_code == 405

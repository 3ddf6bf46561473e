"""Isolation, stage by stage: edgeseg's cut-outs and outlines next to the classic per-object OpenCV recipe.

Run: python -m pytest benchmarks/test_bench_isolate.py -q   (groups: isolate-<case>, contours). The objects are
a synthetic 1920x1080 scene's ground truth (compare_isolate.scene_results), so no network run is timed.
"""

from __future__ import annotations

import pytest
from compare_isolate import CASES, classic_recipe, scene_results

from edgeseg.results import Results


@pytest.fixture(scope="session", params=[20, 100], ids=lambda n: f"{n}-objects")
def result(request: pytest.FixtureRequest) -> Results:
    r = scene_results(1920, 1080, request.param)
    r.isolate(source="contour")  # compiles the kernels and traces (and caches) the outlines
    return r


def _describe(benchmark, result: Results, **extra) -> None:
    benchmark.extra_info.update(frame="1920x1080", objects=len(result), **extra)


@pytest.mark.parametrize("background, crop", CASES, ids=[f"{b}-{'crop' if c else 'full'}" for b, c in CASES])
@pytest.mark.parametrize("who", ["edgeseg_mask", "edgeseg_contour", "classic"])
def test_isolate(benchmark, result, who, background, crop):
    benchmark.group = f"isolate-{background}-{'crop' if crop else 'full'}"
    _describe(benchmark, result, background=background, crop=crop)
    if who == "classic":
        benchmark(classic_recipe, result.orig_img, result.masks.xy, result.boxes.xyxy, background, crop)
    else:
        benchmark(result.isolate, background, crop, who.removeprefix("edgeseg_"))


@pytest.mark.benchmark(group="contours")
def test_contours_on_box_crops(benchmark, result):
    _describe(benchmark, result)
    benchmark(result.masks.contours, "largest")

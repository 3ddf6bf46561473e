"""The network alone, as its runtime runs it without edgeseg: the per-frame floor `edgeseg benchmark --compare bare`
sets beside each edgeseg run. The session is made as the cold-start children make theirs (startup.make_target): an
onnxruntime InferenceSession at edgeseg's graph optimisation level on the same providers, or an OpenVINO compiled
model with the properties edgeseg's backend passes, on the same device; fed the tensor edgeseg's preprocessing made
for the same frames, outside the timing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...segmenter import Segmenter
from .stages import short_provider
from .startup import Target

BARE_STAGES = ("inference", "total")


def open_runtime(target: Target) -> Callable[[np.ndarray], Any]:
    """One call of the bare runtime on an input tensor."""
    args = target.bare_args
    if target.backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as edgeseg's backend
        providers = [tuple(p) if isinstance(p, list) else p for p in args["providers"]]
        session = ort.InferenceSession(args["model"], options, providers=providers)
        name = session.get_inputs()[0].name
        return lambda tensor: session.run(None, {name: tensor})
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(args["model"], args["weights"]), args["device"], args["config"])
    request = compiled.create_infer_request()
    return lambda tensor: request.infer({0: tensor})


class BareStages:
    """The bare runtime of one edgeseg run (same model, backend and provider) on the same frames: one stage,
    inference, which is also its total. The frames are preprocessed once, by the edgeseg run's Segmenter."""

    kind = "bare"
    stages = BARE_STAGES

    def __init__(self, segmenter: Segmenter, target: Target):
        self.seg = segmenter
        self.model = str(segmenter.model_path)
        self.provider = segmenter.providers[0]
        self.device = "cpu"  # nothing after the network
        self.name = f"bare {segmenter.model_path.stem} {short_provider(self.provider)}"  # as its edgeseg run
        self._run = open_runtime(target)
        self._tensors: list[tuple[Sequence[np.ndarray], np.ndarray]] = []

    def _tensor(self, images: Sequence[np.ndarray]) -> np.ndarray:
        for seen, tensor in self._tensors:  # the benchmark's few batches, each the same list object every time
            if seen is images:
                return tensor
        tensor = self.seg.preprocess(list(images))[0].copy()  # its own: preprocessing may reuse its buffers
        self._tensors.append((images, tensor))
        return tensor

    def __call__(self, images: Sequence[np.ndarray]) -> dict[str, float]:
        tensor = self._tensor(images)
        start = time.perf_counter()
        self._run(tensor)
        ms = (time.perf_counter() - start) * 1e3 / len(images)
        return {"inference": ms, "total": ms, "objects": 0.0}

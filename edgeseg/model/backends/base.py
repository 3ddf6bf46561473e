"""The one interface every inference backend offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic dimension) and NumPy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Backend(ABC):
    """Runs a network: one input batch in, its outputs out. Use as a context manager or call close()."""

    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str]  # the model file's own key/value metadata
    providers: tuple[str, ...]  # what actually runs the model, in priority order
    # The GPU path (Segmenter(device="cuda")) reads the outputs where the network wrote them when outputs_on_gpu:
    outputs_on_gpu: bool = False  # infer_on_device() leaves the outputs in GPU memory
    outputs_reused: bool = False  # ... in fixed buffers that the next run overwrites (a pipeline must copy them)
    binding_device: tuple[str, int] = ("cpu", 0)  # where infer_on_device leaves them: ("cuda", GPU index)

    @abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Runs the network on a (B, C, H, W) array of the input's dtype; returns the outputs in order."""

    def infer_on_device(self, batch: np.ndarray) -> list[Any]:
        """Like infer, with the outputs left in GPU memory (objects with __cuda_array_interface__, or OrtValues)."""
        raise NotImplementedError(f"{type(self).__name__} leaves no outputs on the GPU")

    def close(self) -> None:
        """Frees the session; the backend cannot be used afterwards."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

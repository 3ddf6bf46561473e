"""The one interface every inference backend offers.

As in Polygraphy's runners, the public methods check the backend's state and the batch once, the same way for
every backend, and then call the backend's own `_infer`, `_infer_on_device` and `_close`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, ProviderError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic dimension) and NumPy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Backend(ABC):
    """Runs a network: one input batch in, its outputs out. Use as a context manager or call close()."""

    kind: str  # what runs the model, as errors name it: "ONNX Runtime", "TensorRT"
    path: Path  # the model file
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str]  # the model file's own key/value metadata
    providers: tuple[str, ...]  # what actually runs the model, in priority order
    # The GPU path (Segmenter(device="cuda")) reads the outputs where the network wrote them when outputs_on_gpu:
    outputs_on_gpu: bool = False  # infer_on_device() leaves the outputs in GPU memory
    outputs_reused: bool = False  # ... in fixed buffers that the next run overwrites (a pipeline must copy them)
    requests_in_flight: int = 1  # runs a video pipeline keeps going at once (infer() is then called from threads)
    binding_device: tuple[str, int] = ("cpu", 0)  # where infer_on_device leaves them: ("cuda", GPU index)
    # a class default, so that a constructor that fails half-way can still close() what it opened
    _closed: bool = False

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Runs the network on a (B, C, H, W) array of the input's dtype; returns the outputs in order.

        Raises:
            ProviderError: the backend is closed.
            ConfigError: `batch` is not a NumPy array of the input's dtype and fixed dimensions.
        """
        self._check(batch)
        return self._infer(batch)

    def infer_on_device(self, batch: np.ndarray) -> list[Any]:
        """Like infer, with the outputs left in GPU memory (objects with __cuda_array_interface__, or OrtValues).

        Raises:
            ProviderError, ConfigError: as infer.
            NotImplementedError: the backend leaves no outputs on the GPU.
        """
        self._check(batch)
        return self._infer_on_device(batch)

    def close(self) -> None:
        """Frees the session; the backend cannot be used afterwards. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """infer() on a batch that _check accepted."""

    def _infer_on_device(self, batch: np.ndarray) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} leaves no outputs on the GPU")

    @abstractmethod
    def _close(self) -> None:
        """Frees what the backend holds; called once, by close()."""

    def _check(self, batch: np.ndarray) -> None:
        if self._closed:
            raise ProviderError(f"the {self.kind} backend of {self.path.name} is closed")
        spec = self.input
        free = " (* = any size)" if None in spec.shape else ""
        expected = f"takes a {dims(spec.shape)} {spec.dtype} batch{free}"
        if not isinstance(batch, np.ndarray):
            raise ConfigError(f"{self.path.name} {expected} as a NumPy array, got a {type(batch).__name__}")
        if batch.ndim != len(spec.shape) or batch.dtype != spec.dtype or any(
                d is not None and d != n for d, n in zip(spec.shape, batch.shape, strict=True)):
            raise ConfigError(f"{self.path.name} {expected}, got {dims(batch.shape)} {batch.dtype}")


def dims(shape: Sequence[int | None]) -> str:
    """(1, 3, None, 640) -> '1x3x*x640'."""
    return "x".join("*" if d is None else str(d) for d in shape)

"""The one interface every inference backend offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping

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

    @abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Runs the network on a (B, C, H, W) array of the input's dtype; returns the outputs in order."""

    def close(self) -> None:
        """Frees the session; the backend cannot be used afterwards."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

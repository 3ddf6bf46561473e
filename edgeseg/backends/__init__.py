"""Inference backends behind one small interface (see base.Backend)."""

from .base import Backend, TensorSpec

__all__ = ["Backend", "TensorSpec", "open_backend"]


def open_backend(model, providers="auto") -> Backend:
    """Opens a model file with the backend its format needs (ONNX Runtime for .onnx files)."""
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, providers=providers)

"""The network: what a model file says about itself (metadata), what the runtime reads from it once (spec.ModelSpec),
and the backends that run it (backends/: ONNX Runtime, TensorRT)."""

"""edgeseg_export: YOLO-seg checkpoints to ONNX (FP32, FP16, INT8 QDQ) and TensorRT engines, checked against the
original. Installed with the export extra (Ultralytics, PyTorch); the runtime never imports it.

    from edgeseg_export import export
    export("yolo11n-seg.pt", imgsz=640, half=True, verify_after=True).report.format()
"""

from .api import FORMATS, ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]

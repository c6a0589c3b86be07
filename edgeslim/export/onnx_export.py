"""Export a checkpoint to ONNX FP32 with ultralytics' exporter (static batch 1, simplified).

ultralytics writes next to the checkpoint and embeds names/stride/imgsz as ONNX metadata, which its
validator (AutoBackend) reads back, so the same validator scores .pt and .onnx artifacts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeslim.data.tasks import Task
from edgeslim.ultra import YOLO


def export_onnx(weights: Path, imgsz: int, opset: int, out_path: Path, task: Task = "detect") -> Path:
    """``weights`` as ONNX at ``imgsz``; a segment model's export has its protos as a second output."""
    produced = Path(
        YOLO(str(weights), task=task).export(
            format="onnx", imgsz=imgsz, opset=opset, simplify=True, dynamic=False, device="cpu", verbose=False
        )
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if produced.resolve() != out_path.resolve():
        shutil.move(produced, out_path)
    return out_path

"""mAP of any artifact (.pt, .onnx) through one validator: ultralytics' DetectionValidator.

One validator for every format means a mAP difference between stages is the model's, never a
difference in matching or NMS code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import EvaluateParams
from edgeslim.ultra import YOLO


@dataclass(frozen=True)
class Accuracy:
    map50_95: float
    map50: float


STATIC_BATCH_SUFFIXES = (".onnx", ".engine")  # exported at batch 1
GPU_SUFFIXES = (".engine",)  # TensorRT engines run on the first CUDA device


def evaluate_map(artifact: Path, data_yaml: Path, imgsz: int, ev: EvaluateParams, work_dir: Path, split: str = "val") -> Accuracy:
    """Score ``artifact`` on ``split`` of ``data_yaml``; ONNX and TensorRT artifacts run at batch 1 (static export)."""
    suffix = Path(artifact).suffix
    batch = 1 if suffix in STATIC_BATCH_SUFFIXES else ev.batch
    metrics = YOLO(str(artifact), task="detect").val(
        data=str(data_yaml),
        split=split,
        imgsz=imgsz,
        batch=batch,
        rect=False,  # Model.val defaults to rect batches (pads 160 → 192 px); ONNX can't: score all at imgsz
        conf=ev.conf,
        iou=ev.iou,
        device="0" if suffix in GPU_SUFFIXES else "cpu",
        plots=False,
        verbose=False,
        project=str(work_dir),
        name=f"val-{Path(artifact).stem}",
        exist_ok=True,
        workers=0,
    )
    return Accuracy(map50_95=float(metrics.box.map), map50=float(metrics.box.map50))

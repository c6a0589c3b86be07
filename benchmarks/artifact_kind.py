"""What one benchmarked artifact is, apart from how it was built: light enough to import on a GPU
machine that has torch and ultralytics but none of the flow's stack (benchmarks.gpu_rerun)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PYTORCH, ORT = "pytorch-eager", "onnxruntime"


@dataclass(frozen=True)
class Artifact:
    name: str
    producer: str  # source checkpoint | ultralytics | edgeslim
    runtime: str  # PYTORCH | ORT
    precision: str
    path: Path | None = None
    batch_twin: Path | None = None  # what batches > 1 run on: the .pt itself, or the ONNX dynamic twin
    cost_from: Path | None = None  # checkpoint whose torch model is counted for MACs/params
    accuracy: dict | None = None  # map50_95, map50 on the held-out val split
    absent: str | None = None  # why the artifact does not exist

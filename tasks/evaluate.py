from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.config import EvaluateParams
from edgeslim.evaluate.accuracy import evaluate_map
from edgeslim.evaluate.latency import latency_ms
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.prune.structured import count_macs
from edgeslim.report import StageResult
from tasks.step import step


@step("evaluate")
def evaluate_task(
    name: str,
    artifact: Path,
    data_yaml: Path,
    imgsz: int,
    ev: EvaluateParams,
    sample: np.ndarray,
    work_dir: Path,
    gate: str | None = None,
    torch_source: Path | None = None,
) -> StageResult:
    """mAP, size, latency and MACs of one artifact; ``torch_source`` is the checkpoint a non-PyTorch
    artifact was made from (MACs are counted on the torch graph)."""
    acc = evaluate_map(artifact, data_yaml, imgsz, ev, work_dir)
    counted = artifact if Path(artifact).suffix == ".pt" else torch_source
    macs, params = count_macs(load_checkpoint(counted)[1], imgsz) if counted else (None, None)
    latency = latency_ms(artifact, sample, ev)
    print(f"{name}: mAP50-95 {acc.map50_95:.4f} mAP50 {acc.map50:.4f} latency {latency:.2f} ms")
    return StageResult(
        name=name,
        artifact=str(artifact),
        map50_95=acc.map50_95,
        map50=acc.map50,
        size_bytes=Path(artifact).stat().st_size,
        latency_ms=latency,
        gate=gate,
        macs=macs,
        params=params,
    )

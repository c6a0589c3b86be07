from __future__ import annotations

from pathlib import Path

from edgeslim.baseline.train import TrainResult, train_baseline
from edgeslim.config import Params
from edgeslim.data.synthetic import DatasetInfo
from tasks.step import step


@step("train-baseline")
def train_task(p: Params, data: DatasetInfo, out_dir: Path) -> TrainResult:
    result = train_baseline(p.baseline, p.evaluate, data.data_yaml, len(data.names), out_dir)
    print(f"baseline trained {result.epochs_run} epochs: mAP50-95 {result.map50_95:.4f} mAP50 {result.map50:.4f}")
    return result

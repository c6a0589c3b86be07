"""The compress flow's steps run directly: the registry's DATASET and COMPRESS steps, in the flow's
order, through the loop every runner shares, without Prefect and without MLflow.

That gives (a) edgeslim's artifacts to benchmark and (b) the pure compute time of each step, which
the flow's report.json timings are compared with in benchmarks.flow_cost (same step names).
An untrained subject is pruned but not finetuned (``prune.finetune.epochs`` 0): there is nothing to
recover, and its figures are speed and size only (its mAP figures are left out of the results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.dag.layout import Layout
from edgeslim.dag.registry import COMPRESS, DATASET
from edgeslim.dag.run import run_steps
from edgeslim.dag.source import source_outcome
from edgeslim.dag.step import FP32, SOURCE
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.export import TORCH
from edgeslim.export.onnx_export import export_onnx
from edgeslim.report import StageResult


@dataclass
class LibraryRun:
    fused: Path  # fused source, unpruned
    fp32_unpruned: Path  # its ONNX export
    shipped: Path  # the .pt the shipped ONNX comes from: pruned (+ finetuned when trained) and fused, or ``fused``
    fp32: Path
    int8: Path
    calib_images: list[Path]
    pruned: bool
    timings_s: dict[str, float] = field(default_factory=dict)  # the flow's step names → wall seconds
    stages: dict[str, StageResult] = field(default_factory=dict)


def subject_params(p: Params, imgsz: int, trained: bool) -> Params:
    """``p`` at the subject's image size; an untrained subject is not finetuned."""
    p = p.model_copy(update={"compress": p.compress.model_copy(update={"imgsz": imgsz})})
    if trained:
        return p
    return p.model_copy(update={"prune": p.prune.model_copy(update={"finetune": p.prune.finetune.model_copy(update={"epochs": 0})})})


def run_library_steps(p: Params, weights: Path, imgsz: int, out_dir: Path, trained: bool) -> LibraryRun:
    """DATASET + COMPRESS on ``weights`` (the source role), plus the unpruned FP32 export."""
    p = subject_params(p, imgsz, trained)
    layout = Layout(out_dir, datasets=workspace.datasets_dir(p))  # the workspace's dataset, as the flow uses it
    outcomes = run_steps((DATASET,), p, layout, {SOURCE: source_outcome(weights, {"reference": weights.name}, step=SOURCE)})
    outcomes = run_steps(COMPRESS, p, layout, outcomes)
    fused = outcomes["fuse"].artifact("model")
    fp32_unpruned = export_onnx(fused, imgsz, p.export.opset, out_dir / "unpruned" / "model-fp32-unpruned.onnx")  # not a flow step
    stages = {s.name: s for o in outcomes.values() for s in o.stages}
    return LibraryRun(
        fused=fused,
        fp32_unpruned=fp32_unpruned,
        shipped=outcomes["export"].artifact(TORCH),
        fp32=outcomes["export"].artifact(FP32),
        int8=outcomes["quantize"].artifact("int8"),
        calib_images=calibration_images(outcomes["calibrate"].artifact("manifest")),
        pruned=outcomes["prune"].skipped is None,
        timings_s={o.step: o.seconds for o in outcomes.values() if o.seconds},
        stages=stages,
    )

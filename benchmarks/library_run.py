"""The compress flow's steps run directly: same task bodies, same order, no Prefect, no MLflow.

Each Prefect task in tasks/ is a thin wrapper over one library function; ``task.fn`` is its
undecorated body. Chaining those bodies as flows/compress.py does (minus pull and publish, which
are registry I/O) gives (a) edgeslim's artifacts to benchmark and (b) the pure compute time of
each step, which the flow's report.json timings are compared with in benchmarks.flow_cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.data.images import list_images, preprocess
from edgeslim.report import StageResult
from tasks.data import dataset_task
from tasks.evaluate import evaluate_task
from tasks.prune import finetune_task, prune_task
from tasks.quantize import calibration_task, export_task, map_scorer, quantize_task
from tasks.reparam import equivalence_task, fuse_task

T = TypeVar("T")
# The flow's stage names for the artifacts it scores (flows/compress.py), in its order, plus the
# unpruned FP32 export the flow no longer ships but against which pruning's speed-up is measured.
SOURCE, FUSED, FINETUNED, ONNX_FP32, ONNX_INT8 = "baseline", "fused", "finetuned", "onnx-fp32", "onnx-int8"
ONNX_FP32_UNPRUNED = "onnx-fp32-unpruned"


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
    stages: dict[str, StageResult] = field(default_factory=dict)  # empty when not evaluated


def _timed(timings: dict[str, float], step: str, fn: Callable[..., T], *args: object) -> T:
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def run_library_steps(p: Params, weights: Path, imgsz: int, out_dir: Path, evaluate: bool) -> LibraryRun:
    """dataset → fuse → equivalence [→ prune → finetune → fuse] → export → calibration [→ evaluate] → quantize [→ evaluate INT8].

    An untrained model (``evaluate`` False) is pruned but not finetuned: there is nothing to recover,
    and its figures are speed and size only.
    """
    timings: dict[str, float] = {}
    data = _timed(timings, "dataset", dataset_task.fn, p)
    val_dir = workspace.split_dir(data, "val")
    fused = _timed(timings, "fuse", fuse_task.fn, weights, out_dir)
    _timed(timings, "equivalence", equivalence_task.fn, weights, fused.weights, val_dir, p.fuse, imgsz, fused.rename)
    fp32_unpruned = export_task.fn(fused.weights, imgsz, p.export.opset, out_dir / "model-fp32-unpruned.onnx")  # not a flow step
    shipped = fused.weights
    if p.prune.enabled:
        pruned = _timed(timings, "prune", prune_task.fn, fused.unfused, data.data_yaml, val_dir, p, out_dir / "prune")
        trained = _timed(timings, "finetune", finetune_task.fn, pruned.weights, data.data_yaml, p, out_dir / "finetune").weights if evaluate else pruned.weights
        shipped = _timed(timings, "fuse", fuse_task.fn, trained, out_dir / "finetune").weights
        _timed(timings, "equivalence", equivalence_task.fn, trained, shipped, val_dir, p.fuse, imgsz)
    fp32 = _timed(timings, "export", export_task.fn, shipped, imgsz, p.export.opset, out_dir / "model-fp32.onnx")
    calib = _timed(
        timings, "calibration", calibration_task.fn, workspace.split_dir(data, "calib_pool"), fp32, imgsz, data.names, p.calibration, out_dir, p.evaluate.threads
    )
    int8 = out_dir / "model-int8.onnx"
    run = LibraryRun(fused.weights, fp32_unpruned, shipped, fp32, int8, calib.images, p.prune.enabled, timings)
    sample = preprocess(list_images(val_dir)[0], imgsz)

    def evaluated(names_paths: tuple[tuple[str, Path], ...]) -> None:
        for name, path in names_paths:
            run.stages[name] = _timed(timings, "evaluate", evaluate_task.fn, name, path, data.data_yaml, imgsz, p.evaluate, sample, out_dir / "val")

    # As the flow: the INT8 step aims at the mAP gate when the model can be scored (its fallback needs the figures).
    if evaluate:
        pruned_stages = ((FINETUNED, shipped),) if p.prune.enabled else ()
        evaluated(((SOURCE, weights), (FUSED, fused.weights), (ONNX_FP32_UNPRUNED, fp32_unpruned), *pruned_stages, (ONNX_FP32, fp32)))
    score = map_scorer(data.data_yaml, imgsz, p.evaluate, out_dir / "val") if evaluate else None
    target = p.gates.min_map_ratio * run.stages[SOURCE].map50_95 if evaluate else 0.0
    ceiling = run.stages[ONNX_FP32].map50_95 if evaluate else 0.0
    _timed(timings, "quantize", quantize_task.fn, fp32, calib.images, imgsz, p.quantize, int8, score, target, ceiling)
    if evaluate:
        evaluated(((ONNX_INT8, int8),))
    return run

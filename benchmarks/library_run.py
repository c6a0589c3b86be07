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
from tasks.quantize import calibration_task, export_task, quantize_task
from tasks.reparam import equivalence_task, fuse_task

T = TypeVar("T")
# The flow's stage names for the artifacts it scores (flows/compress.py), in its order.
SOURCE, FUSED, ONNX_FP32, ONNX_INT8 = "baseline", "fused", "onnx-fp32", "onnx-int8"


@dataclass
class LibraryRun:
    fused: Path
    fp32: Path
    int8: Path
    calib_images: list[Path]
    timings_s: dict[str, float] = field(default_factory=dict)  # the flow's step names → wall seconds
    stages: dict[str, StageResult] = field(default_factory=dict)  # empty when not evaluated


def _timed(timings: dict[str, float], step: str, fn: Callable[..., T], *args: object) -> T:
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def run_library_steps(p: Params, weights: Path, imgsz: int, out_dir: Path, evaluate: bool) -> LibraryRun:
    """dataset → fuse → equivalence → export → calibration → quantize [→ evaluate the four artifacts]."""
    timings: dict[str, float] = {}
    data = _timed(timings, "dataset", dataset_task.fn, p)
    val_dir = workspace.split_dir(data, "val")
    fused = _timed(timings, "fuse", fuse_task.fn, weights, out_dir)
    _timed(timings, "equivalence", equivalence_task.fn, weights, fused.weights, val_dir, p.fuse.equivalence_images, imgsz)
    fp32 = _timed(timings, "export", export_task.fn, fused.weights, imgsz, p.export.opset, out_dir / "model-fp32.onnx")
    calib, _ = _timed(
        timings, "calibration", calibration_task.fn, workspace.split_dir(data, "calib_pool"), p.calibration, out_dir / "calibration_manifest.json"
    )
    int8 = out_dir / "model-int8.onnx"
    _timed(timings, "quantize", quantize_task.fn, fp32, calib, imgsz, p.quantize, int8)
    run = LibraryRun(fused.weights, fp32, int8, calib, timings)
    if evaluate:
        sample = preprocess(list_images(val_dir)[0], imgsz)
        for name, path in ((SOURCE, weights), (FUSED, fused.weights), (ONNX_FP32, fp32), (ONNX_INT8, int8)):
            run.stages[name] = _timed(timings, "evaluate", evaluate_task.fn, name, path, data.data_yaml, imgsz, p.evaluate, sample, out_dir / "val")
    return run

"""Every artifact of one subject: its source checkpoint, ultralytics' exports, and edgeslim's.

edgeslim's artifacts come from the flow's own task bodies (benchmarks.library_run): the same code
and params as the compress flow, whose mAP figures the flow-cost section puts next to these.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks import exports
from benchmarks.artifact_kind import ORT, PYTORCH, Artifact
from benchmarks.library_run import LibraryRun, run_library_steps
from benchmarks.subjects import Subject
from edgeslim.config import Params
from edgeslim.dag.steps.evaluate import BASELINE, FINETUNED, FUSED, ONNX_FP32, ONNX_INT8
from edgeslim.evaluate.accuracy import evaluate_map

REFERENCE = "ultralytics-onnx-fp32"  # every ratio is against this artifact
PRUNING_OFF = "prune.enabled is false: the compress flow ships the unpruned model"
UNTRAINED = "untrained (random init from the ultralytics yaml): mAP would be meaningless"


def _accuracy(path: Path, subject: Subject, p: Params, data_yaml: Path, work: Path) -> dict | None:
    if not subject.trained:
        return None
    acc = evaluate_map(path, data_yaml, subject.imgsz, p.evaluate, work)
    return {"map50_95": acc.map50_95, "map50": acc.map50}


def _stage_accuracy(run: LibraryRun, stage: str, subject: Subject) -> dict | None:
    s = run.stages.get(stage)
    return None if s is None or not subject.trained else {"map50_95": s.map50_95, "map50": s.map50}


def _ultralytics_export(subject: Subject, p: Params, calib_yaml: Path, precision: str, folder: Path, dynamic: bool) -> Path:
    if precision == "fp32":
        return exports.ultralytics_fp32(subject.weights, subject.imgsz, folder, dynamic)
    return exports.ultralytics_int8(subject.weights, subject.imgsz, folder, dynamic, calib_yaml, p.calibration.num_images)


def _ultralytics(subject: Subject, p: Params, data_yaml: Path, calib_yaml: Path, work: Path) -> list[Artifact]:
    """ultralytics' FP32 and INT8 ONNX exports (static for shipping, dynamic twin for batches)."""
    made = []
    for name, precision in ((REFERENCE, "fp32"), ("ultralytics-onnx-int8", "int8")):
        try:
            static = _ultralytics_export(subject, p, calib_yaml, precision, work / name / "static", dynamic=False)
            twin = _ultralytics_export(subject, p, calib_yaml, precision, work / name / "dynamic", dynamic=True)
        except Exception as exc:  # noqa: BLE001 — a failure of ultralytics' exporter is a finding to record
            made.append(Artifact(name, "ultralytics", ORT, precision, absent=f"ultralytics export failed: {type(exc).__name__}: {exc}"))
            continue
        made.append(
            Artifact(name, "ultralytics", ORT, precision, static, twin, accuracy=_accuracy(static, subject, p, data_yaml, work / "val"))
        )
    return made


def build_artifacts(
    subject: Subject, p: Params, data_yaml: Path, calib_yaml: Path, work: Path, runs: Path
) -> tuple[list[Artifact], LibraryRun]:
    """The source checkpoint, ultralytics' exports, and edgeslim's artifacts (library run, cached
    under ``runs``, which a benchmark run does not clear) of ``subject``."""
    theirs = _ultralytics(subject, p, data_yaml, calib_yaml, work)
    run = run_library_steps(p, subject.weights, subject.imgsz, runs / "default", subject.trained)
    unpruned_twin = exports.edgeslim_dynamic_fp32(run.fused, subject.imgsz, p, work / "edgeslim-dynamic" / "unpruned")
    fp32_twin = exports.edgeslim_dynamic_fp32(run.shipped, subject.imgsz, p, work / "edgeslim-dynamic" / "shipped")
    int8_twin = exports.edgeslim_dynamic_int8(fp32_twin, subject.imgsz, p, run.calib_images)
    theirs = [a if a.absent else replace(a, cost_from=run.fused) for a in theirs]  # ultralytics fuses before export
    source = Artifact(
        "pytorch-eager",
        "source checkpoint",
        PYTORCH,
        "fp32",
        subject.weights,
        subject.weights,
        subject.weights,
        _stage_accuracy(run, BASELINE, subject),
    )
    pruned_name = "edgeslim-pruned-finetuned-pt" if subject.trained else "edgeslim-pruned-pt"
    pruned = (
        Artifact(pruned_name, "edgeslim", PYTORCH, "fp32", run.shipped, run.shipped, run.shipped, _stage_accuracy(run, FINETUNED, subject))
        if run.pruned
        else Artifact(pruned_name, "edgeslim", PYTORCH, "fp32", absent=PRUNING_OFF)
    )
    ours = [
        Artifact("edgeslim-fused-pt", "edgeslim", PYTORCH, "fp32", run.fused, run.fused, run.fused, _stage_accuracy(run, FUSED, subject)),
        Artifact(
            "edgeslim-onnx-fp32-unpruned",
            "edgeslim",
            ORT,
            "fp32",
            run.fp32_unpruned,
            unpruned_twin,
            run.fused,
            _accuracy(run.fp32_unpruned, subject, p, data_yaml, work / "val"),
        ),
        pruned,
        Artifact("edgeslim-onnx-fp32", "edgeslim", ORT, "fp32", run.fp32, fp32_twin, run.shipped, _stage_accuracy(run, ONNX_FP32, subject)),
        Artifact("edgeslim-onnx-int8", "edgeslim", ORT, "int8", run.int8, int8_twin, run.shipped, _stage_accuracy(run, ONNX_INT8, subject)),
    ]
    return [source, *theirs, *ours], run

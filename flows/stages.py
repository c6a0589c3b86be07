"""The compress flow's steps one at a time, for ``dvc repro`` (`edgeslim stage NAME`, dvc.yaml).

Each stage calls the same task functions the flow runs (their plain ``.fn``: no Prefect run, no
MLflow), reads params.yaml, writes its outputs under ``<workspace>/dvc/<stage>/`` and its figures to
``<workspace>/dvc/metrics/<stage>.json`` (``dvc metrics show``); ``evaluate`` also writes the plots.
The baseline is trained here rather than pulled from the registry: a DVC pipeline must reproduce
from a fresh clone with nothing but params.yaml. A failed equivalence gate fails its stage (exit 3);
the mAP gate is recorded in the evaluate metrics.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import yaml

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.data.images import list_images, preprocess
from edgeslim.data.synthetic import DatasetInfo, dataset_sha256, generate_dataset
from edgeslim.errors import GateFailed
from edgeslim.gates import Gate, equivalence_gate, map_gate
from edgeslim.plots import Point, pareto_plot
from tasks.baseline import train_task
from tasks.evaluate import evaluate_task
from tasks.prune import finetune_task, prune_task
from tasks.quantize import calibration_task, export_task, map_scorer, quantize_task
from tasks.reparam import STRIPPED_FILE, equivalence_task, fuse_task

MODEL_FILE = "model.pt"  # finetune stage: the checkpoint that is exported (fused; pruned+finetuned when enabled)


def _dir(p: Params, stage: str) -> Path:
    path = workspace.root(p) / "dvc" / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


def _metrics(p: Params, stage: str, figures: dict) -> None:
    out = _dir(p, "metrics") / f"{stage}.json"
    out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"{stage}: {json.dumps(figures, sort_keys=True)}")


def _dataset(p: Params) -> DatasetInfo:
    """The dataset stage's output (class names from its data.yaml: a user's set has its own)."""
    folder = _dir(p, "dataset")
    names = (yaml.safe_load((folder / "data.yaml").read_text()) or {}).get("names") or {}
    names = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)
    return DatasetInfo(folder, folder / "data.yaml", dataset_sha256(folder), names)


def _check(gate: Gate) -> None:
    if not gate.passed:
        raise GateFailed(f"gate {gate.name} failed: {gate.detail}")


def dataset(p: Params) -> None:
    """The embedded dataset for the current ``dataset`` params, or a copy of the user's ``data.yaml``
    folder (DVC then versions its content; rerun with ``dvc repro -f -s dataset`` after changing it)."""
    folder = _dir(p, "dataset")
    if p.dataset.data_yaml is not None:
        src = workspace.dataset(p)
        shutil.copytree(src.root, folder, dirs_exist_ok=True)
        info = _dataset(p)
    else:
        info = generate_dataset(p.dataset, folder, progress=False)
    counts = {split: len(list_images(workspace.split_dir(info, split))) for split in ("train", "val", "calib_pool")}
    _metrics(p, "dataset", {"sha256": info.sha256, **{f"images_{k}": v for k, v in counts.items()}})


def baseline(p: Params) -> None:
    data = _dataset(p)
    trained = train_task.fn(p, data, _dir(p, "baseline"))
    _metrics(p, "baseline", {"map50_95": trained.map50_95, "map50": trained.map50, "epochs_run": trained.epochs_run})


def fuse(p: Params) -> None:
    data, out = _dataset(p), _dir(p, "fuse")
    source = _dir(p, "baseline") / "baseline.pt"
    fused = fuse_task.fn(source, out)
    eq = equivalence_task.fn(source, fused.weights, workspace.split_dir(data, "val"), p.fuse, p.baseline.imgsz, fused.rename)
    gate = equivalence_gate(eq, p.fuse)
    _metrics(p, "fuse", {"rel_l2": eq.rel_l2, "rel_max_abs": eq.rel_max_abs, "fused_modules": len(fused.report.fused), "passed": gate.passed})
    _check(gate)


def prune(p: Params) -> None:
    """Prune the unfused single-head model (pruning needs BatchNorm): the baseline, or the fuse stage's
    stripped dual-head model as the flow does; with ``prune.enabled: false`` nothing is written."""
    out = _dir(p, "prune")
    if not p.prune.enabled:
        _metrics(p, "prune", {"enabled": False})
        return
    data = _dataset(p)
    stripped = _dir(p, "fuse") / STRIPPED_FILE
    source = stripped if stripped.exists() else _dir(p, "baseline") / "baseline.pt"
    pruned = prune_task.fn(source, data.data_yaml, workspace.split_dir(data, "val"), p, out)
    figures = {k: v for k, v in pruned.report.items() if isinstance(v, (int, float, bool))}
    _metrics(p, "prune", {"enabled": True, **figures})


def finetune(p: Params) -> None:
    """Finetune and re-fuse the pruned model (equivalence-gated); unpruned: the fused baseline as is."""
    out = _dir(p, "finetune")
    if not p.prune.enabled:
        shutil.copy2(_dir(p, "fuse") / "fused.pt", out / MODEL_FILE)
        _metrics(p, "finetune", {"enabled": False})
        return
    data = _dataset(p)
    tuned = finetune_task.fn(_dir(p, "prune") / "pruned.pt", data.data_yaml, p, out)
    fused = fuse_task.fn(tuned.weights, out)
    eq = equivalence_task.fn(tuned.weights, fused.weights, workspace.split_dir(data, "val"), p.fuse, p.baseline.imgsz)
    gate = equivalence_gate(eq, p.fuse, "equivalence_pruned")
    shutil.move(fused.weights, out / MODEL_FILE)
    _metrics(p, "finetune", {"enabled": True, "map50_95": tuned.map50_95, "epochs_run": tuned.epochs_run, "rel_l2": eq.rel_l2, "passed": gate.passed})
    _check(gate)


def calibrate(p: Params) -> None:
    """Export the FP32 ONNX and curate the calibration set from the calib_pool split."""
    data, out = _dataset(p), _dir(p, "calibrate")
    fp32 = export_task.fn(_dir(p, "finetune") / MODEL_FILE, p.baseline.imgsz, p.export.opset, out / "model-fp32.onnx")
    calib = calibration_task.fn(workspace.split_dir(data, "calib_pool"), fp32, p.baseline.imgsz, data.names, p.calibration, out, p.evaluate.threads)
    _metrics(p, "calibrate", {k: v for k, v in calib.report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def quantize(p: Params) -> None:
    """INT8 from the curated set; with the fallback on, aimed at the mAP gate like the flow."""
    data, calib_dir, out = _dataset(p), _dir(p, "calibrate"), _dir(p, "quantize")
    fp32 = calib_dir / "model-fp32.onnx"
    manifest = json.loads((calib_dir / "calibration_manifest.json").read_text())
    images = [Path(entry["path"]) for entry in manifest["images"]]
    score, target, ceiling = None, 0.0, 0.0
    if p.quantize.fallback.enabled:
        score = map_scorer(data.data_yaml, p.baseline.imgsz, p.evaluate, out / "val")
        target = p.gates.min_map_ratio * score(_dir(p, "baseline") / "baseline.pt")
        ceiling = score(fp32)
    report = quantize_task.fn(fp32, images, p.baseline.imgsz, p.quantize, out / "model-int8.onnx", score, target, ceiling)
    d = report.as_dict()
    _metrics(p, "quantize", {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def evaluate(p: Params) -> None:
    """Every artifact through the one validator; mAP gate verdict; stage table as metrics and plots."""
    data = _dataset(p)
    val, work = workspace.split_dir(data, "val"), _dir(p, "evaluate")
    sample = preprocess(list_images(val)[0], p.baseline.imgsz)
    torch_model = _dir(p, "finetune") / MODEL_FILE
    artifacts = [("baseline", _dir(p, "baseline") / "baseline.pt"), ("fused", _dir(p, "fuse") / "fused.pt")]
    if p.prune.enabled:
        artifacts.append(("finetuned", torch_model))
    artifacts += [("onnx-fp32", _dir(p, "calibrate") / "model-fp32.onnx"), ("onnx-int8", _dir(p, "quantize") / "model-int8.onnx")]
    stages = [evaluate_task.fn(name, path, data.data_yaml, p.baseline.imgsz, p.evaluate, sample, work / "val", None, torch_model) for name, path in artifacts]
    base = stages[0].map50_95 or 0.0
    gate = map_gate(stages[-1].map50_95 or 0.0, base, p.gates.min_map_ratio)
    rows = [{"stage": s.name, "map50_95": s.map50_95, "latency_ms": s.latency_ms, "size_bytes": s.size_bytes, "map_ratio": (s.map50_95 or 0.0) / base if base else None} for s in stages]
    plots = _dir(p, "plots")
    (plots / "stages.json").write_text(json.dumps(rows, indent=2) + "\n")
    pareto_plot([Point(s.name, s.map50_95, s.latency_ms, s.size_bytes) for s in stages], "dvc repro: accuracy vs latency (marker area = file size)", plots / "pareto.png")
    # Recorded, not raised: `dvc exp run` sweeps compare settings, failing ones included; publishing
    # (where the gate decides) is the flow's business.
    _metrics(p, "evaluate", {**{f"{r['stage']}.{k}": r[k] for r in rows for k in ("map50_95", "latency_ms", "size_bytes")}, "gate.map_ratio": gate.value, "gate.passed": gate.passed})


STAGES: dict[str, Callable[[Params], None]] = {
    f.__name__: f for f in (dataset, baseline, fuse, prune, finetune, calibrate, quantize, evaluate)
}

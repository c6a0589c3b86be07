"""The compress flow: pull → fuse → equivalence gate → ONNX → calibrate → INT8 → evaluate → gates → publish.

Seams for later stages (pruning + finetuning between fusion and export, curated calibration,
TensorRT, fleet paging after publish) are the task calls below; each takes and returns paths.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from mlflow import MlflowClient
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from edgeslim import workspace
from edgeslim.calibration.curate import MANIFEST_NAME, PLOT_NAME
from edgeslim.config import Params, load_params
from edgeslim.data.images import list_images, preprocess
from edgeslim.errors import GateFailed
from edgeslim.fleet.page import raise_for_channels
from edgeslim.gates import equivalence_gate, map_gate, onnx_equivalence_gate
from edgeslim.lineage import RUN_ID_TAG
from edgeslim.registry.mlflow_registry import download_run_file, flat_params
from edgeslim.registry.tracking import StepRecord
from edgeslim.report import Report
from tasks.data import dataset_task
from tasks.evaluate import evaluate_task
from tasks.page import page_task
from tasks.publish import find_published_task, lineage_tags, publish_task
from tasks.prune import finetune_task, prune_task
from tasks.pull import pull_task
from tasks.quantize import TENSORRT_ENGINE, calibration_task, export_task, map_scorer, quantize_task, tensorrt_task
from tasks.reparam import STRIPPED_FILE, equivalence_task, fuse_task, onnx_equivalence_task

REPORT_ARTIFACT_KEY = "edgeslim-compress-report"
# Which params section each step reads, and the file it leaves in the run folder: what its nested
# MLflow run records.
STEP_SECTIONS = {
    "dataset": "dataset", "fuse": "fuse", "equivalence": "fuse", "export": "export",
    "calibration": "calibration", "quantize": "quantize", "evaluate": "evaluate", "tensorrt": "quantize",
    "prune": "prune", "finetune": "prune",
}
STEP_FILES = {
    "fuse": ("fused.pt", STRIPPED_FILE), "export": ("model-fp32.onnx",), "calibration": (MANIFEST_NAME, PLOT_NAME), "quantize": ("model-int8.onnx",),
    "tensorrt": (TENSORRT_ENGINE,), "prune": ("prune/pruned.pt", "prune/channels.png"), "finetune": ("finetune/finetuned.pt",),
}
STEP_DETAILS = {"fuse": "fusion", "equivalence": "equivalence", "calibration": "calibration", "quantize": "quantization", "tensorrt": "tensorrt",
                "prune": "pruning", "finetune": "finetune"}
# What makes two runs produce the same edge model: everything but where things are served.
PUBLISH_KEY_SECTIONS = ("fuse", "prune", "export", "calibration", "quantize", "evaluate", "gates")


def publish_key(p: Params, source_name: str, source_version: str, dataset_sha: str) -> str:
    facts = f"{source_name}:{source_version}:{dataset_sha}:{p.baseline.imgsz}:{p.section_hash(*PUBLISH_KEY_SECTIONS)}"
    return hashlib.sha256(facts.encode()).hexdigest()[:24]


def step_records(p: Params, report: Report, run_dir: Path) -> list[StepRecord]:
    """One record per step that ran: its params section, numeric details, files and wall time."""
    params = p.model_dump(mode="json")
    records = []
    for name, seconds in report.timings.items():
        section = STEP_SECTIONS.get(name)
        detail = report.details.get(STEP_DETAILS.get(name, ""), {})
        metrics = {k: float(v) for k, v in detail.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if name == "evaluate":
            metrics.update({f"{s.name}.map50_95": s.map50_95 for s in report.stages if s.map50_95 is not None})
            metrics.update({f"{s.name}.latency_ms": s.latency_ms for s in report.stages if s.latency_ms is not None})
        files = [run_dir / f for f in STEP_FILES.get(name, ()) if (run_dir / f).exists()]
        records.append(StepRecord(name, flat_params({section: params[section]}) if section else {}, metrics, files, seconds))
    return records


def _finish(
    report: Report, run_dir: Path, tracking_uri: str, p: Params, edge: Path | None, lineage: dict[str, str], key: str, force: bool
) -> dict:
    """Record the run, publish when every gate passed, write report.json; a failed gate raises."""
    with report.timed("publish"):
        publish_task(tracking_uri, p, report, run_dir, edge, lineage, step_records(p, report, run_dir), key, force)
    if p.fleet.enabled and report.published and not report.published.get("reused"):  # only a version this run registered
        with report.timed("page"):
            report.details["rollout"] = page_task(tracking_uri, p, report.published, run_dir)
    report.write_json(run_dir / "report.json")
    report.write_json(workspace.root(p) / "latest" / "report.json")  # fixed path for DVC metrics
    markdown = report.markdown()
    if "pareto_png" in report.details:
        markdown += f"\n![accuracy vs latency]({report.details['pareto_png']})\n\nMLflow run: {report.details['mlflow_run_url']}\n"
    create_markdown_artifact(key=REPORT_ARTIFACT_KEY, markdown=markdown, description=f"report.json: {run_dir / 'report.json'}")
    print(report.markdown())
    if not report.passed:
        failed = "; ".join(f"gate {g.name} failed: {g.detail}" for g in report.failed_gates())
        raise GateFailed(f"{failed}. Nothing published; report: {run_dir / 'report.json'}")
    if "rollout" in report.details:
        raise_for_channels(report.details["rollout"])  # after report.json, so the failed channel is on record
    return {"report": str(run_dir / "report.json"), **report.to_dict()}


@flow(name="edgeslim-compress", log_prints=True)
def compress_flow(
    model: str, tracking_uri: str, params_file: str = "params.yaml", overrides: list[str] | None = None, force: bool = False
) -> dict:
    """Compress ``model`` (NAME, NAME@ALIAS or NAME:VERSION) and publish it if every gate passes.

    Idempotent: when the same source version was already compressed and published with the same
    params and data, the existing edge version is reported and nothing is recomputed (``force``
    publishes again).
    """
    p = load_params(params_file, overrides or [])
    run_dir = workspace.new_run_dir(p, "compress")
    imgsz = p.baseline.imgsz
    report = Report(model=model, source_version="?")
    with report.timed("dataset"):
        data = dataset_task(p)
    val_dir = workspace.split_dir(data, "val")
    with report.timed("pull"):
        source = pull_task(tracking_uri, model, p.mlflow.source_alias, data.names, run_dir / "source")
    report.model, report.source_version = source.name, source.version
    key = publish_key(p, source.name, source.version, data.sha256)
    if not force:
        existing = find_published_task(tracking_uri, p, key)
        if existing:
            return _already_published(existing, run_dir, p)

    with report.timed("fuse"):
        fused = fuse_task(source.weights, run_dir)
    with report.timed("equivalence"):
        eq = equivalence_task(source.weights, fused.weights, val_dir, p.fuse, imgsz, fused.rename)
    report.gates["equivalence"] = equivalence_gate(eq, p.fuse)
    report.details.update(fusion=fused.as_dict(), equivalence=eq.as_dict())
    lineage = lineage_tags(p, source, data.sha256, None)
    if not report.passed:
        return _finish(report, run_dir, tracking_uri, p, None, lineage, key, force)

    torch_stages = [("baseline", source.weights, None), ("fused", fused.weights, "equivalence")]
    if p.prune.enabled:
        # a dual-head source is pruned as its stripped single-head model (fused.unfused)
        torch_stages += _prune_and_finetune(p, report, fused.unfused, data.data_yaml, val_dir, run_dir)
        if not report.passed:
            return _finish(report, run_dir, tracking_uri, p, None, lineage, key, force)
    export_from = torch_stages[-1][1]
    with report.timed("export"):
        fp32 = export_task(export_from, imgsz, p.export.opset, run_dir / "model-fp32.onnx")
    with report.timed("equivalence"):
        onnx_eq = onnx_equivalence_task(export_from, fp32, val_dir, p.fuse.equivalence_images, imgsz, p.evaluate.threads)
    report.gates["onnx_equivalence"] = onnx_equivalence_gate(onnx_eq, p.fuse)
    report.details["onnx_equivalence"] = onnx_eq.as_dict()
    if not report.passed:
        return _finish(report, run_dir, tracking_uri, p, None, lineage, key, force)
    with report.timed("calibration"):
        calib = calibration_task(workspace.split_dir(data, "calib_pool"), fp32, imgsz, data.names, p.calibration, run_dir, p.evaluate.threads)
    report.details["calibration"] = calib.report
    latest = workspace.root(p) / "latest"  # fixed paths DVC tracks (dvc.yaml): which images calibrated INT8
    latest.mkdir(parents=True, exist_ok=True)
    for file in (calib.manifest, calib.plot):
        shutil.copy2(file, latest / file.name)
    lineage = lineage_tags(p, source, data.sha256, calib.sha256)

    sample = preprocess(list_images(val_dir)[0], imgsz)
    for name, path, gate in [*torch_stages, ("onnx-fp32", fp32, None)]:
        with report.timed("evaluate"):
            report.stages.append(evaluate_task(name, path, data.data_yaml, imgsz, p.evaluate, sample, run_dir / "val", gate, export_from))
    base_map, fp32_map = report.stages[0].map50_95 or 0.0, report.stages[-1].map50_95 or 0.0
    # The accuracy-aware fallback aims at the gate itself and scores with the flow's one validator.
    int8 = run_dir / "model-int8.onnx"
    with report.timed("quantize"):
        quant = quantize_task(
            fp32, calib.images, imgsz, p.quantize, int8, map_scorer(data.data_yaml, imgsz, p.evaluate, run_dir / "val"),
            target=p.gates.min_map_ratio * base_map, ceiling=fp32_map,
        )
    report.details["quantization"] = quant.as_dict()
    with report.timed("evaluate"):
        int8_stage = evaluate_task("onnx-int8", int8, data.data_yaml, imgsz, p.evaluate, sample, run_dir / "val", "map_ratio", export_from)
    report.stages.append(int8_stage)
    with report.timed("tensorrt"):
        engine = tensorrt_task(fp32, calib.images, imgsz, p.quantize, quant.float_nodes, run_dir)
    report.details["tensorrt"] = engine.as_dict()
    if engine.path:
        with report.timed("evaluate"):
            report.stages.append(evaluate_task("tensorrt-int8-gpu", engine.path, data.data_yaml, imgsz, p.evaluate, sample, run_dir / "val", None, export_from))
    for stage in report.stages:
        stage.map_ratio = stage.map50_95 / base_map if base_map > 0 else None
    report.gates["map_ratio"] = map_gate(int8_stage.map50_95 or 0.0, base_map, p.gates.min_map_ratio)
    return _finish(report, run_dir, tracking_uri, p, int8, lineage, key, force)


def _prune_and_finetune(p: Params, report: Report, source: Path, data_yaml: Path, val_dir: Path, run_dir: Path) -> list[tuple[str, Path, str | None]]:
    """Prune → finetune → fuse the finetuned model (equivalence-gated like the first fusion).

    Pruning starts from the unfused source: BN-gamma importance and finetuning need the BatchNorm
    layers that fusion folds away; the first fusion above has already proved this model fuses.
    Returns the stages to score: pruned (before finetuning) and finetuned (fused).
    """
    with report.timed("prune"):
        pruned = prune_task(source, data_yaml, val_dir, p, run_dir / "prune")
    with report.timed("finetune"):
        tuned = finetune_task(pruned.weights, data_yaml, p, run_dir / "finetune")
    with report.timed("fuse"):
        fused = fuse_task(tuned.weights, run_dir / "finetune")
    with report.timed("equivalence"):
        eq = equivalence_task(tuned.weights, fused.weights, val_dir, p.fuse, p.baseline.imgsz)
    report.gates["equivalence_pruned"] = equivalence_gate(eq, p.fuse, "equivalence_pruned")
    report.details.update(pruning=pruned.report, finetune=tuned.as_dict(), equivalence_pruned=eq.as_dict())
    return [("pruned", pruned.weights, None), ("finetuned", fused.weights, "equivalence_pruned")]


def _already_published(existing: dict, run_dir: Path, p: Params) -> dict:
    """Report the version an identical earlier run published, with that run's report."""
    print(
        f"{existing['model']} version {existing['version']} was already published from this source version "
        f"with the same params and data; nothing to do (use --force to publish again)"
    )
    path = run_dir / "report.json"
    version = MlflowClient().get_model_version(existing["model"], existing["version"])
    earlier = json.loads(download_run_file(version.tags[RUN_ID_TAG], "report.json", run_dir / "earlier").read_text())
    earlier["published"] = existing
    for target in (path, workspace.root(p) / "latest" / "report.json"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(earlier, indent=2) + "\n")
    return {"report": str(path), **earlier}

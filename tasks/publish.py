"""Record every run in MLflow; register the edge version only when every gate passed."""
from __future__ import annotations

from pathlib import Path

import mlflow

from edgeslim.config import Params
from edgeslim.lineage import gate_tags, git_sha, tags
from edgeslim.registry import mlflow_registry as reg
from edgeslim.report import Report
from tasks.step import step


def _log_report(report: Report, run_dir: Path) -> None:
    report.write_json(run_dir / "report.json")
    (run_dir / "report.md").write_text(report.markdown())
    mlflow.log_artifact(str(run_dir / "report.json"))
    mlflow.log_artifact(str(run_dir / "report.md"))


@step("record-and-publish")
def publish_task(
    tracking_uri: str, p: Params, report: Report, run_dir: Path, edge_artifact: Path | None, lineage: dict[str, str]
) -> dict | None:
    """Log the run (params, per-stage metrics, report); when gates passed, register and alias.

    Returns the published ``{"model", "version", "alias"}`` or None. A failed gate never reaches
    the registry: the run is still recorded (status FAILED) so the failure is visible in the UI.
    """
    client = reg.connect(tracking_uri)
    mlflow.set_experiment(p.mlflow.experiment)
    with mlflow.start_run(run_name=f"compress {report.model} v{report.source_version}") as run:
        mlflow.set_tags({**lineage, "edgeslim.kind": "compress"})
        mlflow.log_params(reg.flat_params(p.model_dump(mode="json")))
        for s in report.stages:
            metrics = {"map50_95": s.map50_95, "map50": s.map50, "map_ratio": s.map_ratio, "size_bytes": s.size_bytes, "latency_ms": s.latency_ms}
            mlflow.log_metrics({f"{s.name}.{k}": float(v) for k, v in metrics.items() if v is not None})
        mlflow.log_metrics({f"gate.{k}": g.value for k, g in report.gates.items()})
        for extra in ("calibration_manifest.json",):
            if (run_dir / extra).exists():
                mlflow.log_artifact(str(run_dir / extra))
        if report.passed and edge_artifact is not None:
            model_uri = reg.log_weights_model(edge_artifact)
            edge_name = f"{p.model_name}{p.mlflow.edge_suffix}"
            version_tags = {**lineage, **gate_tags(report.gates), **tags(run_id=run.info.run_id)}
            mv = reg.register(client, model_uri, edge_name, version_tags, p.mlflow.edge_alias)
            report.published = {"model": edge_name, "version": str(mv.version), "alias": p.mlflow.edge_alias}
            print(f"published {edge_name} version {mv.version} @ {p.mlflow.edge_alias}")
        _log_report(report, run_dir)
    if not report.passed:
        client.set_terminated(run.info.run_id, status="FAILED")
    return report.published


def lineage_tags(p: Params, source: reg.PulledModel, dataset_sha: str, calibration_sha: str | None) -> dict[str, str]:
    return tags(
        source_model=source.name,
        source_version=source.version,
        source_run_id=source.run_id,
        git_sha=git_sha(),
        params_hash=p.section_hash(),
        dataset_sha256=dataset_sha,
        calibration_sha256=calibration_sha,
    )

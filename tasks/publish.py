"""Record the flow run in MLflow (parent + nested step runs, Pareto plot, report) and, when every
gate passed, register the edge version under the model's publish lock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import requests
from mlflow.exceptions import MlflowException
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run

from edgeslim.config import Params
from edgeslim.dag.layout import Layout
from edgeslim.errors import RegistryError
from edgeslim.lineage import METRIC_TAG, PUBLISH_KEY_TAG, RUN_ID_TAG, TASK_TAG, gate_tags, git_sha, tags
from edgeslim.plots import Point, map_ylabel, pareto_plot, stage_points
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.lock import registry_lock
from edgeslim.registry.tracking import StepRecord, experiment_id, log_batch, log_step, run_url
from edgeslim.report import Report, metric_label
from tasks.step import step

NOTE_TAG = "mlflow.note.content"  # MLflow renders this markdown as the run's description
EDGE_STAGE = "onnx-int8"  # the INT8 artifact, whose figures are compared with the previous candidate's


def edge_model_name(p: Params) -> str:
    return f"{p.model_name}{p.mlflow.edge_suffix}"


@step("find-published")
def find_published_task(client: mlflow.MlflowClient, p: Params, publish_key: str) -> dict | None:
    """The edge version already published from the same source version, params and data, if any.

    A version whose publish was cut short after registration (server gone before the alias moved)
    is finished here, under the publish lock, instead of being published a second time.
    """
    edge = edge_model_name(p)
    existing = reg.published_with_key(client, edge, PUBLISH_KEY_TAG, publish_key)
    if existing is None or existing["complete"]:
        return existing and _resume(client, p, existing)
    with registry_lock(client, edge, flow_run.id or publish_key, p.mlflow.lock_ttl_s, p.mlflow.lock_timeout_s, p.mlflow.lock_poll_s):
        again = reg.published_with_key(client, edge, PUBLISH_KEY_TAG, publish_key)
        return again and _resume(client, p, again)


def _resume(client: mlflow.MlflowClient, p: Params, existing: dict) -> dict:
    """Report an existing identical version, moving the alias first if its publish never finished."""
    aliases = list(existing["aliases"])
    if not existing["complete"]:
        print(f"finishing the interrupted publish of {existing['model']} version {existing['version']}")
        reg.move_alias(client, existing["model"], existing["version"], p.mlflow.edge_alias)
        aliases.append(p.mlflow.edge_alias)
    alias = p.mlflow.edge_alias if p.mlflow.edge_alias in aliases else None
    return {"model": existing["model"], "version": existing["version"], "alias": alias, "reused": True}


def _log_report(client: mlflow.MlflowClient, run_id: str, report: Report, layout: Layout) -> None:
    """report.json/report.md as artifacts, and the table as the run's description (the UI shows it first)."""
    report.write_json(layout.report_json())
    layout.report_md().write_text(report.markdown())
    for path in (layout.report_json(), layout.report_md()):
        client.log_artifact(run_id, str(path))
    client.set_tag(run_id, NOTE_TAG, report.markdown())


def _previous_candidate(client: mlflow.MlflowClient, p: Params) -> Point | None:
    """The current candidate's INT8 figures, read from the run that published it."""
    try:
        mv = client.get_model_version_by_alias(edge_model_name(p), p.mlflow.edge_alias)
        metrics = client.get_run(mv.tags[RUN_ID_TAG]).data.metrics
        return Point(
            f"previous {p.mlflow.edge_alias} v{mv.version}",
            metrics[f"{EDGE_STAGE}.map50_95"],
            metrics[f"{EDGE_STAGE}.latency_ms"],
            int(metrics[f"{EDGE_STAGE}.size_bytes"]),
        )
    except (MlflowException, KeyError):
        return None


def _plot(report: Report, previous: Point | None, out: Path) -> Path | None:
    points = stage_points(report.stages)
    if not points:
        return None
    title = f"{report.model} v{report.source_version}: accuracy vs latency (marker area = file size)"
    return pareto_plot(points, title, out, reference=previous, ylabel=map_ylabel(metric_label(report.details)))


@dataclass(frozen=True)
class Publication:
    """What publishing did: the version it registered (or found), and where the run is in MLflow."""

    published: dict | None  # {"model", "version", "alias"[, "reused"]}; None when a gate failed
    run_url: str
    pareto_url: str | None


@dataclass(frozen=True)
class Submission:
    """What a finished run hands to publishing: its report and files, lineage, step records, publish key."""

    report: Report
    layout: Layout
    edge_artifacts: tuple[tuple[str, Path], ...]  # (format, file) the target ships, preferred first; () unless every gate passed
    lineage: dict[str, str]
    steps: list[StepRecord]
    publish_key: str
    force: bool
    example_image: Path | None  # a calibration image: the logged model's input example


@step("record-and-publish")
def publish_task(client: mlflow.MlflowClient, tracking_uri: str, p: Params, sub: Submission) -> Publication:
    """Log the parent run and one nested run per step; when gates passed, register and move the alias.

    A failed gate never reaches the registry: the run is still recorded (status FAILED) so the
    failure is visible in the UI. Registration happens under the model's publish lock, where the
    publish key is checked again, so concurrent runs neither duplicate a version nor interleave
    their alias moves. The alias moves last, after the version and all its tags exist. A tracking
    server failing mid-way is one clear line, not a traceback.
    """
    try:
        return _record_and_publish(client, tracking_uri, p, sub)
    except (MlflowException, requests.RequestException) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise RegistryError(
            f"tracking server {tracking_uri} failed while recording/publishing: {message.splitlines()[0][:300]}. "
            f"Aliases move only after a version is complete, so none points at a partial one"
        ) from None


def _record_and_publish(client: mlflow.MlflowClient, tracking_uri: str, p: Params, sub: Submission) -> Publication:
    report, layout, publish_key = sub.report, sub.layout, sub.publish_key
    print(f"recording the run in {tracking_uri}")
    exp_id = experiment_id(client, p.mlflow.experiment)
    ui_url = flow_run.ui_url  # "None/flow-runs/..." on an ephemeral server, which has no UI to link to
    prefect_tags = {"prefect.flow_run_id": flow_run.id, "prefect.flow_run_url": ui_url if ui_url and ui_url.startswith("http") else None}
    parent = client.create_run(
        exp_id,
        run_name=f"compress {report.model} v{report.source_version}",
        tags={**sub.lineage, **{k: v for k, v in prefect_tags.items() if v}, "edgeslim.kind": "compress", PUBLISH_KEY_TAG: publish_key},
    )
    run_id = parent.info.run_id
    url = run_url(tracking_uri, exp_id, run_id)
    named = _named_map(report.details)
    stage_metrics = {
        f"{s.name}.{k}": float(v)
        for s in report.stages
        for k, v in {
            "map50_95": s.map50_95,
            **({named: s.map50_95} if named else {}),
            "map50": s.map50,
            "box_map50_95": s.box_map50_95,
            "map_ratio": s.map_ratio,
            "size_bytes": s.size_bytes,
            "latency_ms": s.latency_ms,
        }.items()
        if v is not None
    }
    gate_metrics = {f"gate.{k}": g.value for k, g in report.gates.items()}
    which = {k: sub.lineage[k] for k in (TASK_TAG, METRIC_TAG) if k in sub.lineage}  # which mAP ``<stage>.map50_95`` is
    log_batch(client, run_id, reg.flat_params(p.model_dump(mode="json")), {**stage_metrics, **gate_metrics}, which)
    for record in sub.steps:
        log_step(client, exp_id, run_id, record)
    plot = _plot(report, _previous_candidate(client, p), layout.pareto_png())
    pareto_url = None
    if plot:
        client.log_artifact(run_id, str(plot))
        pareto_url = f"{tracking_uri.rstrip('/')}/get-artifact?path={plot.name}&run_uuid={run_id}"
    links = {"mlflow_run_url": url, **({"pareto_png": pareto_url} if pareto_url else {})}
    recorded = replace(report, details={**report.details, **links})
    _log_report(client, run_id, recorded, layout)  # before registering: a cut-short publish still has its report
    published = None
    if recorded.passed and sub.edge_artifacts:
        published = _register(client, p, replace(sub, report=recorded), run_id)
        verb = "found already published" if published.get("reused") else "published"
        print(f"{verb}: {published['model']} version {published['version']} @ {published['alias']}")
        _log_report(client, run_id, replace(recorded, published=published), layout)
    client.set_terminated(run_id, "FINISHED" if recorded.passed else "FAILED")
    create_link_artifact(link=url, link_text=f"MLflow run of {report.model} v{report.source_version}", key="mlflow-run")
    return Publication(published, url, pareto_url)


def _named_map(details: dict) -> str | None:
    """``mask_map50_95`` or ``pose_map50_95``: the gated figure again under its own name, so a chart of a
    segment or pose run in MLflow says which mAP it plots without its tags (None for a box mAP, detect's
    and obb's, which ``map50_95`` already is)."""
    metric = details.get("metric", {}).get("metric")
    return f"{metric}_map50_95" if metric and metric != "box" else None


def _register(client: mlflow.MlflowClient, p: Params, sub: Submission, run_id: str) -> dict:
    """A new edge version under the publish lock, or the identical one another run published meanwhile.

    The version holds every format the target ships (the preferred one is what its pyfunc loads) and
    says which, in order, in ``edgeslim.formats``. The version's description is the report as it
    reads once published; the alias moves after it.
    """
    edge = edge_model_name(p)
    with registry_lock(client, edge, flow_run.id or run_id, p.mlflow.lock_ttl_s, p.mlflow.lock_timeout_s, p.mlflow.lock_poll_s):
        existing = None if sub.force else reg.published_with_key(client, edge, PUBLISH_KEY_TAG, sub.publish_key)
        if existing:  # an identical run published while this one computed
            return _resume(client, p, existing)
        print(f"registering a new version of {edge}")
        with mlflow.start_run(run_id=run_id):
            (_, preferred), *others = sub.edge_artifacts
            model_uri = reg.log_weights_model(preferred, example_image=sub.example_image, extra={fmt: path for fmt, path in others})
        formats = tags(target=p.target.profile, formats=",".join(fmt for fmt, _ in sub.edge_artifacts))
        version_tags = {**sub.lineage, **gate_tags(sub.report.gates), **formats, RUN_ID_TAG: run_id, PUBLISH_KEY_TAG: sub.publish_key}
        mv = reg.register(client, model_uri, edge, version_tags, None)
        published = {"model": edge, "version": str(mv.version), "alias": p.mlflow.edge_alias}
        client.update_model_version(edge, mv.version, description=replace(sub.report, published=published).markdown())
        reg.move_alias(client, edge, str(mv.version), p.mlflow.edge_alias)
        return published


def lineage_tags(
    p: Params, source: reg.PulledModel, dataset_sha: str, calibration_sha: str | None, metric: dict[str, str]
) -> dict[str, str]:
    """Where the version came from, and what it is scored as (``metric``: the evaluate step's facts; empty
    when the run stopped before scoring)."""
    return tags(
        task=metric.get("task"),
        metric=metric.get("label"),
        source_model=source.name,
        source_version=source.version,
        source_run_id=source.run_id,
        git_sha=git_sha(),
        params_hash=p.section_hash(),
        dataset_sha256=dataset_sha,
        calibration_sha256=calibration_sha,
    )

"""The compress flow: dataset → pull → the registry's compress steps → publish → page the fleet.

The steps between pull and publish are :data:`edgeslim.dag.registry.COMPRESS`, each run as a
Prefect task by the loop every runner shares (:func:`edgeslim.dag.run.run_steps`); the flow adds
only what touches MLflow and the fleet.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from mlflow import MlflowClient
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from edgeslim import workspace
from edgeslim.cluster.fanout import result_of
from edgeslim.config import Params, load_params
from edgeslim.dag.layout import REPORT_JSON, Layout
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.registry import COMPRESS, DATASET
from edgeslim.dag.run import bound_by, failed_gates, run_steps
from edgeslim.dag.source import source_outcome
from edgeslim.dag.step import SOURCE
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.summary import build_report, step_records
from edgeslim.errors import GateFailed
from edgeslim.fleet.page import raise_for_outcome
from edgeslim.lineage import RUN_ID_TAG
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.mlflow_registry import download_run_file
from edgeslim.report import Report
from tasks.fan import dask_fan
from tasks.page import page_task
from tasks.placement import placed
from tasks.publish import Publication, Submission, find_published_task, lineage_tags, publish_task
from tasks.pull import pull_task
from tasks.step import as_task, retrying

REPORT_ARTIFACT_KEY = "edgeslim-compress-report"
SEARCH_ARTIFACT_KEY = "edgeslim-search"  # the search's candidates, one row each (the Pareto table)
RESULT_ARTIFACT_KEY = "edgeslim-compress-result"  # one table row a parent run (compress-many) reads through the API
LATEST_REPORT = Path("latest") / REPORT_JSON  # the newest compress report, at a fixed path in the workspace
# What makes two runs produce the same edge model: everything but where things are served.
PUBLISH_KEY_SECTIONS = ("fuse", "search", "prune", "export", "calibration", "quantize", "evaluate", "gates", "target")


def publish_key(p: Params, source_name: str, source_version: str, dataset_sha: str) -> str:
    c = p.compress  # its levers too: a run at another activation or input size makes another model
    facts = f"{source_name}:{source_version}:{dataset_sha}:{c.imgsz}:{c.activation}:{c.input_size}:{p.section_hash(*PUBLISH_KEY_SECTIONS)}"
    return hashlib.sha256(facts.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Run:
    """What one flow run knows before its compress steps: params, folders, registry, source, publish key."""

    p: Params
    layout: Layout
    client: MlflowClient
    tracking_uri: str
    source: reg.PulledModel
    key: str
    force: bool


@flow(name="edgeslim-compress", log_prints=True)
def compress_flow(
    model: str, tracking_uri: str | None = None, params_file: str = "params.yaml", overrides: list[str] | None = None, force: bool = False
) -> dict:
    """Compress ``model`` and publish it if every gate passes.

    ``model``: NAME, NAME@ALIAS, NAME:VERSION, models:/NAME@ALIAS, models:/NAME/VERSION,
    runs:/<run_id>/<path> (e.g. ultralytics' ``weights/best.pt``), a local .pt file, or a local .onnx
    (then only the ONNX steps run). ``tracking_uri``: None = MLFLOW_TRACKING_URI (or mlflow.tracking_uri)
    where the run executes, e.g. a worker's environment.

    Idempotent: when the same source version was already compressed and published with the same
    params and data, the existing edge version is reported and nothing is recomputed (``force``
    publishes again).
    """
    p = load_params(params_file, overrides or [])
    tracking_uri = workspace.flow_tracking_uri(p, tracking_uri)
    layout = Layout(workspace.new_run_dir(p, "compress"), datasets=workspace.datasets_dir(p))
    client = reg.connect(tracking_uri)  # the run's one client (and its one reachability check)
    outcomes = run_steps((DATASET,), p, layout, call=as_task)
    data = dataset_info(outcomes[DATASET.name])
    start = time.perf_counter()
    source, p, facts = retrying(pull_task, p)(client, model, p, data, layout.pulled())
    outcomes[SOURCE] = source_outcome(source.weights, {"reference": model, **facts}, time.perf_counter() - start)
    run = Run(p, layout, client, tracking_uri, source, publish_key(p, source.name, source.version, data.sha256), force)
    if not force:
        existing = retrying(find_published_task, p)(client, p, run.key)
        if existing:
            return _already_published(client, existing, layout, p)
    return _finish(run, run_steps(COMPRESS, p, layout, outcomes, call=placed(p, tracking_uri), fan=dask_fan(p.prefect.dask)))


def _finish(run: Run, outcomes: Mapping[str, Outcome]) -> dict:
    """The one way out of a run that computed: record it, publish if every gate passed, page the
    fleet, write report.json; a failed gate (or channel) raises after the report is on record."""
    p, layout = bound_by(run.p, outcomes), run.layout  # with what the search chose: the params the run's steps really ran with
    report = build_report(run.source.name, run.source.version, outcomes)
    lineage = lineage_tags(
        p, run.source, outcomes[DATASET.name].details["dataset"]["sha256"], _calibration_sha(outcomes), _metric(outcomes)
    )
    shipped = outcomes["gates"].details["target"]["shipped"] if report.passed else []
    edge = tuple((s["format"], Path(s["artifact"])) for s in shipped)
    example = calibration_images(outcomes["calibrate"].artifact("manifest"))[:1] if edge else []  # a gate passed only after calibrate
    start = time.perf_counter()
    steps = step_records(p, (DATASET, *COMPRESS), outcomes)
    sub = Submission(report, layout, edge, lineage, steps, run.key, run.force, example[0] if example else None)
    publication = publish_task(run.client, run.tracking_uri, p, sub)
    report = _with_publication(report, publication, time.perf_counter() - start)
    rollout = None
    if p.fleet.enabled and publication.published and not publication.published.get("reused"):  # only a version this run registered
        start = time.perf_counter()
        rollout = page_task(run.tracking_uri, p, publication.published, layout.page_dir())
        report = replace(
            report, details={**report.details, "rollout": rollout}, timings={**report.timings, "page": time.perf_counter() - start}
        )
    for target in (layout.report_json(), workspace.root(p) / LATEST_REPORT):
        report.write_json(target)
    markdown = report.markdown()
    if publication.pareto_url:
        markdown += f"\n![accuracy vs latency]({publication.pareto_url})\n\nMLflow run: {publication.run_url}\n"
    create_markdown_artifact(key=REPORT_ARTIFACT_KEY, markdown=markdown, description=f"report.json: {layout.report_json()}")
    _search_artifact(report.details.get("search"))
    _result_artifact(report.to_dict())
    print(report.markdown())
    if not report.passed:
        raise GateFailed(f"{'; '.join(failed_gates(outcomes))}. Nothing published; report: {layout.report_json()}")
    if rollout is not None:
        raise_for_outcome(rollout)  # after report.json, so the failed channel is on record
    return {"report": str(layout.report_json()), **report.to_dict()}


def _with_publication(report: Report, publication: Publication, seconds: float) -> Report:
    links = {"mlflow_run_url": publication.run_url, **({"pareto_png": publication.pareto_url} if publication.pareto_url else {})}
    return replace(
        report, published=publication.published, details={**report.details, **links}, timings={**report.timings, "publish": seconds}
    )


def _metric(outcomes: Mapping[str, Outcome]) -> dict[str, str]:
    """What the run's mAP figures are (the evaluate step's facts), empty when a gate stopped it before."""
    evaluate = outcomes.get("evaluate")
    return evaluate.details.get("metric", {}) if evaluate and evaluate.skipped is None else {}


def _calibration_sha(outcomes: Mapping[str, Outcome]) -> str | None:
    calibrate = outcomes.get("calibrate")
    return calibrate.details["calibration"]["sha256"] if calibrate and calibrate.skipped is None else None


def _already_published(client: MlflowClient, existing: dict, layout: Layout, p: Params) -> dict:
    """Report the version an identical earlier run published, with that run's report."""
    print(
        f"{existing['model']} version {existing['version']} was already published from this source version "
        f"with the same params and data; nothing to do (use --force to publish again)"
    )
    version = client.get_model_version(existing["model"], existing["version"])
    earlier = json.loads(download_run_file(version.tags[RUN_ID_TAG], REPORT_JSON, layout.dir("earlier")).read_text())
    earlier["published"] = existing
    for target in (layout.report_json(), workspace.root(p) / LATEST_REPORT):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(earlier, indent=2) + "\n")
    _result_artifact(earlier)
    return {"report": str(layout.report_json()), **earlier}


def _search_artifact(search: dict | None) -> None:
    """Every candidate the search timed, with its short-finetune score and fate, as a table in the Prefect UI."""
    if search and search.get("candidates"):
        chosen = search["chosen"]["variant"] if search.get("chosen") else "nothing"
        create_table_artifact(table=search["candidates"], key=SEARCH_ARTIFACT_KEY, description=f"search: chose {chosen} ({search['goal']})")


def _result_artifact(report: dict) -> None:
    create_table_artifact(table=[result_of(report)], key=RESULT_ARTIFACT_KEY, description="what this run published, for a parent run")

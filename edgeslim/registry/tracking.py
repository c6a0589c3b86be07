"""MLflow runs for one flow run: a parent run, and a nested run per pipeline step.

Why the client API and not the fluent one: Prefect may run tasks on worker threads, and MLflow's
fluent "active run" is thread-local; explicit run ids keep every step's record where it belongs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_CHARS = 6000
MAX_TAG_CHARS = 5000  # MLflow's tag value limit is 8000 characters; what a status line needs, with room
# MLflow 3's UI opens an experiment on its GenAI overview unless told it holds model training: the
# 3.17 UI reads the workflow type from the page URL (then from the browser's last choice), older
# and hosted UIs from the experiment's kind tag. edgeslim sets both.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"
ML_WORKFLOW = "workflowType=machine_learning"


@dataclass
class StepRecord:
    """What one step contributes to MLflow: its knobs, its figures, its files, its wall time."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    duration_s: float | None = None
    tags: dict[str, str] = field(default_factory=dict)  # e.g. where it ran, when it ran on another work pool
    children: list[StepRecord] = field(default_factory=list)  # nested under it (the search's candidates)


def ui_url(tracking_uri: str, route: str) -> str:
    """A page of the MLflow UI, opened on the model-training side (runs table, not GenAI traces)."""
    return f"{tracking_uri.rstrip('/')}/#/{route.strip('/')}?{ML_WORKFLOW}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return ui_url(tracking_uri, f"experiments/{experiment_id}/runs/{run_id}")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment ``name`` (created if new), marked as model development for MLflow's UI."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT})
    if EXPERIMENT_KIND_TAG not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT)
    return exp.experiment_id


def log_batch(
    client: MlflowClient, run_id: str, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str] | None = None
) -> None:
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def log_step(client: MlflowClient, exp_id: str, parent_id: str, step: StepRecord) -> str:
    """One finished nested run under ``parent_id`` holding the step's params, metrics and files."""
    run = client.create_run(exp_id, run_name=step.name, tags={**step.tags, PARENT_TAG: parent_id, "edgeslim.step": step.name})
    metrics = dict(step.metrics)
    if step.duration_s is not None:
        metrics["duration_s"] = step.duration_s
    log_batch(client, run.info.run_id, step.params, metrics)
    for path in step.artifacts:
        if Path(path).exists():
            client.log_artifact(run.info.run_id, str(path))
    for child in step.children:
        log_step(client, exp_id, run.info.run_id, child)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id

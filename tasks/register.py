"""Register a trained baseline as ``<model_name>@champion`` (or find the one already there)."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from edgeslim.config import Params
from edgeslim.errors import RegistryError
from edgeslim.lineage import git_sha, tags
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.tracking import experiment_id
from tasks.step import step

BASELINE_KEY_TAG = "edgeslim.baseline_key"


@step("find-champion")
def reusable_champion_task(client: MlflowClient, p: Params, baseline_key: str) -> ModelVersion | None:
    """The current champion when it was trained from the same dataset and baseline params."""
    try:
        champion = reg.resolve(client, reg.ModelRef(p.model_name, alias=p.mlflow.source_alias))
    except RegistryError:
        return None
    return champion if champion.tags.get(BASELINE_KEY_TAG) == baseline_key else None


@step("register-baseline")
def register_baseline_task(
    client: MlflowClient, p: Params, weights: Path, arch_yaml: Path, figures: dict[str, float], dataset_sha: str, baseline_key: str
) -> ModelVersion:
    mlflow.set_experiment(experiment_id=experiment_id(client, p.mlflow.experiment))
    lineage = tags(git_sha=git_sha(), params_hash=p.section_hash("baseline", "dataset"), dataset_sha256=dataset_sha, kind="baseline")
    with mlflow.start_run(run_name=f"baseline {p.model_name}"):
        mlflow.set_tags(lineage)
        mlflow.log_params(reg.flat_params(p.model_dump(mode="json", include={"dataset", "baseline"})))
        mlflow.log_metrics(figures)
        mlflow.log_artifact(str(arch_yaml))
        model_uri = reg.log_weights_model(weights)
        mv = reg.register(client, model_uri, p.model_name, {**lineage, BASELINE_KEY_TAG: baseline_key}, p.mlflow.source_alias)
    print(f"registered {p.model_name} version {mv.version} @ {p.mlflow.source_alias}")
    return mv

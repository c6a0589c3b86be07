"""Retrain steps: finetune the champion on new data, score old and new on the held-out split,
register the new version and move the champion alias only when it is better by the margin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from edgeslim.config import BaselineParams, EvaluateParams, FinetuneParams, Params
from edgeslim.evaluate.accuracy import evaluate_map
from edgeslim.lineage import git_sha, tags
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.prune.finetune import FinetuneResult, finetune
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.tracking import experiment_id
from tasks.register import BASELINE_KEY_TAG
from tasks.step import step

RETRAINED_FROM_TAG = "edgeslim.retrained_from"


@dataclass(frozen=True)
class Verdict:
    """New vs champion on the same held-out split, and whether the alias should move."""

    champion_map50_95: float
    new_map50_95: float
    margin: float

    @property
    def promote(self) -> bool:
        return self.new_map50_95 > self.champion_map50_95 + self.margin


@step("finetune-champion")
def finetune_champion_task(
    weights: Path, data_yaml: Path, ft: FinetuneParams, base: BaselineParams, ev: EvaluateParams, out_dir: Path
) -> FinetuneResult:
    """The champion's own architecture and weights, trained further on the new dataset version."""
    ckpt, model = load_checkpoint(weights)
    result = finetune(model, ckpt, data_yaml, base.imgsz, base, ev, ft, ft.epochs, 0.0, out_dir)
    print(f"finetuned the champion {result.epochs_run} epochs on the new data")
    return result


@step("compare")
def compare_task(
    champion: Path, candidate: Path, data_yaml: Path, imgsz: int, ev: EvaluateParams, margin: float, work_dir: Path
) -> Verdict:
    """Both models through the one validator, on the new dataset's held-out val split."""
    old = evaluate_map(champion, data_yaml, imgsz, ev, work_dir).map50_95
    new = evaluate_map(candidate, data_yaml, imgsz, ev, work_dir).map50_95
    verdict = Verdict(old, new, margin)
    print(
        f"held-out mAP50-95: champion {old:.4f}, retrained {new:.4f} (margin {verdict.margin}): {'promote' if verdict.promote else 'keep the champion'}"
    )
    return verdict


@step("register-retrained")
def register_retrained_task(
    client: MlflowClient, p: Params, weights: Path, source: reg.PulledModel, dataset_sha: str, verdict: Verdict
) -> dict:
    """Register the retrained model (always: its evaluation is on record) and move the alias if better."""
    mlflow.set_experiment(experiment_id=experiment_id(client, p.mlflow.experiment))
    lineage = tags(
        git_sha=git_sha(),
        params_hash=p.section_hash("baseline", "dataset", "triggers"),
        dataset_sha256=dataset_sha,
        kind="retrain",
        retrained_from=source.version,
        map50_95=f"{verdict.new_map50_95:.6g}",
        champion_map50_95=f"{verdict.champion_map50_95:.6g}",
        promoted=verdict.promote,
    )
    with mlflow.start_run(run_name=f"retrain {source.name} v{source.version}"):
        mlflow.set_tags(lineage)
        mlflow.log_params(reg.flat_params(p.model_dump(mode="json", include={"dataset", "baseline"})))
        mlflow.log_metrics({"map50_95": verdict.new_map50_95, "champion_map50_95": verdict.champion_map50_95})
        model_uri = reg.log_weights_model(weights)
        # Inherit the baseline key: `edgeslim baseline`/`demo` then keep a retrained champion instead
        # of training a fresh baseline over it.
        inherited = {BASELINE_KEY_TAG: source.tags[BASELINE_KEY_TAG]} if BASELINE_KEY_TAG in source.tags else {}
        mv = reg.register(client, model_uri, source.name, {**lineage, **inherited}, None)
    alias = p.mlflow.source_alias
    if verdict.promote:
        reg.move_alias(client, source.name, str(mv.version), alias)
    print(
        f"registered {source.name} version {mv.version}; @{alias} {'moved to it' if verdict.promote else f'stays on version {source.version}'}"
    )
    return {
        "model": source.name,
        "version": str(mv.version),
        "promoted": verdict.promote,
        "champion": str(mv.version) if verdict.promote else source.version,
    }

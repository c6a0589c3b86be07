"""The retrain flow (scheduled by `edgeslim serve`): newest dataset version → finetune the champion
→ held-out comparison → register → move ``champion`` only when better by ``triggers.retrain.margin``.

"Newest dataset version" is the dataset the current params describe, identified by its content
hash (what the DVC ``dataset`` stage produces; a new seed, size or data.yaml is a new version).
When the champion was already trained or retrained on that exact content there is nothing new to
learn and the flow ends without training. Moving ``champion`` starts compression through the MLflow
webhook (``on_promote: webhook``), or directly through the compress deployment (``deployment``).
"""

from __future__ import annotations

from prefect import flow

from edgeslim import workspace
from edgeslim.config import load_params
from edgeslim.dag.layout import Layout
from edgeslim.dag.registry import DATASET
from edgeslim.dag.run import run_steps
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.errors import CheckpointError
from edgeslim.registry import mlflow_registry as reg
from edgeslim.triggers.start import StartFailed, start_compress
from tasks.pull import pull_task
from tasks.retrain import compare_task, finetune_champion_task, register_retrained_task
from tasks.step import as_task, retrying

DATASET_TAG = "edgeslim.dataset_sha256"


@flow(name="edgeslim-retrain", log_prints=True)
def retrain_flow(tracking_uri: str | None = None, params_file: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Retrain the champion on the newest dataset version; promote it only if it is better
    (``tracking_uri``: None = MLFLOW_TRACKING_URI where the run executes)."""
    p = load_params(params_file, overrides or [])
    tracking_uri = workspace.flow_tracking_uri(p, tracking_uri)
    client = reg.connect(tracking_uri)
    run_dir = workspace.new_run_dir(p, "retrain")
    data = dataset_info(run_steps((DATASET,), p, Layout(run_dir, datasets=workspace.datasets_dir(p)), call=as_task)[DATASET.name])
    alias = p.mlflow.source_alias
    champion, _, facts = retrying(pull_task, p)(client, f"{p.model_name}@{alias}", p, data, run_dir / "champion")
    if facts["format"] != "pt":
        raise CheckpointError(f"{p.model_name}@{alias} is an ONNX model: retraining needs its PyTorch checkpoint")
    if champion.tags.get(DATASET_TAG) == data.sha256:
        print(f"{p.model_name}@{alias} (version {champion.version}) already learned dataset {data.sha256[:12]}; nothing to retrain")
        return {"model": p.model_name, "champion": champion.version, "skipped": True, "promoted": False}
    retrain = p.triggers.retrain
    tuned = finetune_champion_task(champion.weights, data.data_yaml, retrain.finetune, p.baseline, p.evaluate, run_dir / "finetune")
    verdict = compare_task(champion.weights, tuned.weights, data.data_yaml, p.baseline.imgsz, p.evaluate, retrain.margin, run_dir / "val")
    out = retrying(register_retrained_task, p)(client, p, tuned.weights, champion, data.sha256, verdict)
    out.update(skipped=False, champion_map50_95=verdict.champion_map50_95, new_map50_95=verdict.new_map50_95, dataset_sha256=data.sha256)
    if out["promoted"] and p.triggers.retrain.on_promote == "deployment":
        try:
            out["compress_flow_run"] = start_compress(
                p, f"{p.model_name}:{out['version']}", f"retrain-{p.model_name}-{out['version']}", "retrained champion"
            )
        except StartFailed as exc:  # the promotion stands; compression can be started by hand or by the webhook
            print(f"warning: {exc}")
    return out

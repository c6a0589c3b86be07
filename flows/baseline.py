"""The baseline flow: dataset → train a tiny detector → register it as ``<model_name>@champion``.

Idempotent: a champion trained from the same dataset content and baseline params is reused. The
dataset and training steps are the registry's (the DVC pipeline's source stages).
"""

from __future__ import annotations

import hashlib

from prefect import flow

from edgeslim import workspace
from edgeslim.config import load_params
from edgeslim.dag.layout import Layout
from edgeslim.dag.registry import BASELINE, DATASET
from edgeslim.dag.run import run_steps
from edgeslim.dag.step import SOURCE
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.registry import mlflow_registry as reg
from tasks.register import register_baseline_task, reusable_champion_task
from tasks.step import as_task, retrying


@flow(name="edgeslim-baseline", log_prints=True)
def baseline_flow(tracking_uri: str, params_file: str = "params.yaml", overrides: list[str] | None = None, force: bool = False) -> dict:
    """Make sure ``<model_name>@champion`` exists for these params; train only when needed."""
    p = load_params(params_file, overrides or [])
    client = reg.connect(tracking_uri)
    layout = Layout(workspace.new_run_dir(p, "baseline"), datasets=workspace.datasets_dir(p))
    outcomes = run_steps((DATASET,), p, layout, call=as_task)
    data = dataset_info(outcomes[DATASET.name])
    key = hashlib.sha256(f"{data.sha256}:{p.section_hash('baseline')}".encode()).hexdigest()[:16]
    if not force:
        champion = reusable_champion_task(client, p, key)
        if champion is not None:
            print(f"reusing {p.model_name} version {champion.version} @ {p.mlflow.source_alias} (same data and params)")
            return {"model": p.model_name, "version": str(champion.version), "reused": True}
    trained = run_steps((BASELINE,), p, layout, outcomes, call=as_task)[BASELINE.name]
    mv = retrying(register_baseline_task, p)(
        client, p, trained.artifact(SOURCE), trained.artifact("arch_yaml"), trained.metrics, data.sha256, key
    )
    return {"model": p.model_name, "version": str(mv.version), "reused": False}

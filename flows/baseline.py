"""The baseline flow: dataset → train a tiny detector → register it as ``<model_name>@champion``.

Idempotent: a champion trained from the same dataset content and baseline params is reused.
"""
from __future__ import annotations

import hashlib

from prefect import flow

from edgeslim import workspace
from edgeslim.config import load_params
from tasks.baseline import train_task
from tasks.data import dataset_task
from tasks.register import register_baseline_task, reusable_champion_task


@flow(name="edgeslim-baseline", log_prints=True)
def baseline_flow(tracking_uri: str, params_file: str = "params.yaml", overrides: list[str] | None = None, force: bool = False) -> dict:
    """Make sure ``<model_name>@champion`` exists for these params; train only when needed."""
    p = load_params(params_file, overrides or [])
    data = dataset_task(p)
    key = hashlib.sha256(f"{data.sha256}:{p.section_hash('baseline')}".encode()).hexdigest()[:16]
    if not force:
        champion = reusable_champion_task(tracking_uri, p, key)
        if champion is not None:
            print(f"reusing {p.model_name} version {champion.version} @ {p.mlflow.source_alias} (same data and params)")
            return {"model": p.model_name, "version": str(champion.version), "reused": True}
    trained = train_task(p, data, workspace.new_run_dir(p, "baseline"))
    mv = register_baseline_task(tracking_uri, p, trained, data.sha256, key)
    return {"model": p.model_name, "version": str(mv.version), "reused": False}

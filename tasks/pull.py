from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from edgeslim.errors import CheckpointError
from edgeslim.models.checkpoint import class_names, load_checkpoint
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.sources import fetch, parse_source
from tasks.step import step


@step("pull")
def pull_task(client: MlflowClient, model: str, default_alias: str, expected_names: tuple[str, ...], dest: Path) -> reg.PulledModel:
    """Resolve ``model`` (a registered version, a run artifact, a local .pt) to a detection checkpoint
    and check it predicts the dataset's classes."""
    pulled = fetch(client, parse_source(model, default_alias), dest)
    _, net = load_checkpoint(pulled.weights)
    names = class_names(net)
    if tuple(names) != tuple(expected_names):
        raise CheckpointError(
            f"{pulled.name} version {pulled.version} predicts {len(names)} classes {names}, "
            f"but the dataset has {len(expected_names)} {list(expected_names)}"
        )
    print(f"pulled {pulled.name} version {pulled.version} ({pulled.weights.stat().st_size / 1024:.0f} KiB)")
    return pulled

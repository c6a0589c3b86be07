from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from edgeslim.config import Params
from edgeslim.dag.source import Facts, bind_source, check_against_data, convergence_line, size_line
from edgeslim.data.synthetic import DatasetInfo
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.references import parse_source
from edgeslim.registry.sources import fetch
from tasks.step import step


@step("pull")
def pull_task(client: MlflowClient, model: str, p: Params, data: DatasetInfo, dest: Path) -> tuple[reg.PulledModel, Params, Facts]:
    """Resolve ``model`` (a registered version, a run artifact, a local .pt or .onnx) to a detection
    model, bind its own facts into the params (:func:`bind_source`) and check it suits the dataset
    (task and classes)."""
    pulled = fetch(client, parse_source(model, p.mlflow.source_alias), dest)
    bound, facts = bind_source(p, pulled.weights)
    check_against_data(facts, data, f"{pulled.name} version {pulled.version}")
    print(
        f"pulled {pulled.name} version {pulled.version} ({facts['format']}, {pulled.weights.stat().st_size / 1024:.0f} KiB), "
        f"{size_line(facts)}"
    )
    print(convergence_line(facts))
    return pulled, bound, facts

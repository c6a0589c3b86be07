"""``edgeslim register``: a run artifact or a local ``best.pt`` as a proper registered version.

ultralytics' MLflow callback leaves ``weights/best.pt`` as a plain run artifact, and
``mlflow.register_model("runs:/<id>/weights", ...)`` then fails after creating an empty registered
model. Registering through here logs the checkpoint as a model first (edgeslim's pyfunc, with its
signature and an input example), tags it with the run that trained it, and only then creates the
version and moves the alias, so promotion in the MLflow UI and the webhook trigger work for
ultralytics-trained models like for edgeslim's own.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from edgeslim.errors import CheckpointError
from edgeslim.lineage import tags
from edgeslim.models.checkpoint import class_names, load_checkpoint
from edgeslim.models.onnx_model import is_onnx
from edgeslim.registry.mlflow_registry import log_weights_model, register
from edgeslim.registry.references import Source
from edgeslim.registry.sources import fetch
from edgeslim.registry.tracking import experiment_id


def register_source(
    client: MlflowClient, source: Source, name: str, alias: str | None, experiment: str, dest: Path, example_image: Path | None
) -> ModelVersion:
    """Validate ``source`` as a detection checkpoint, log it as a model, register it, move ``alias`` last."""
    pulled = fetch(client, source, dest)
    if is_onnx(pulled.weights):
        raise CheckpointError(f"{source.text} is an ONNX model; register takes a .pt checkpoint (compress the ONNX file directly)")
    _, model = load_checkpoint(pulled.weights)  # a detection model, or one clear error
    lineage = tags(registered_from=source.text, training_run_id=pulled.run_id, classes=",".join(class_names(model)))
    mlflow.set_experiment(experiment_id=experiment_id(client, experiment))
    with mlflow.start_run(run_name=f"register {source.text}"):
        mlflow.set_tags(lineage)
        model_uri = log_weights_model(pulled.weights, example_image=example_image)
    return register(client, model_uri, name, lineage, alias)

"""Files moved between machines through the MLflow server, content-addressed.

Why: a step that runs on another worker (a GPU machine) shares no disk with the run that started it.
Its inputs and outputs travel as artifacts of one MLflow "transfer" run per flow run (experiment
``<mlflow.experiment>-transfers``), stored under ``blobs/<sha256>/<file name>``. The receiver checks the
sha256 on arrival, so a truncated or swapped file is an error, never a silently different model.
MLflow is the one store every worker already reaches (its artifact proxy, whatever backs it: local
disk or S3), so nothing else needs credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from edgeslim.digest import file_sha256
from edgeslim.errors import RegistryError
from edgeslim.registry.tracking import experiment_id

TRANSFER_SUFFIX = "-transfers"


class TransferError(RegistryError):
    """A file that did not arrive as it was sent (sha256 mismatch, missing artifact)."""


@dataclass(frozen=True)
class Blob:
    """Where a file went (``runs:/<run>/blobs/<sha256>/<name>``) and what it must hash to."""

    uri: str
    sha256: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "sha256": self.sha256, "name": self.name}


def transfer_run(client: MlflowClient, experiment: str, flow_run_id: str) -> str:
    """The transfer run of one flow run (created on first use; found again by its tag on a rerun)."""
    exp_id = experiment_id(client, f"{experiment}{TRANSFER_SUFFIX}")
    found = client.search_runs([exp_id], filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'", max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(exp_id, run_name=f"transfers of {flow_run_id}", tags={"prefect.flow_run_id": flow_run_id}).info.run_id


def put(client: MlflowClient, run_id: str, path: Path) -> Blob:
    digest = file_sha256(path)
    client.log_artifact(run_id, str(path), artifact_path=f"blobs/{digest}")
    return Blob(f"runs:/{run_id}/blobs/{digest}/{Path(path).name}", digest, Path(path).name)


def get(blob: Blob, dest: Path) -> Path:
    """Download ``blob`` under ``dest`` (its own sha-named folder) and check its sha256."""
    target = dest / blob.sha256
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=blob.uri, dst_path=str(target)))
    except mlflow.exceptions.MlflowException as exc:
        raise TransferError(
            f"{blob.uri} could not be downloaded: {exc.message}"
        ) from exc  # the cause tells a transient failure (registry/transient.py)
    got = file_sha256(path)
    if got != blob.sha256:
        raise TransferError(f"{blob.uri} arrived with sha256 {got[:12]}, sent as {blob.sha256[:12]}: refusing a different file")
    return path

"""Where things live for one params set: datasets, runs, the local MLflow store, Prefect's home.

Resolution rules in one place: the tracking URI (params → MLFLOW_TRACKING_URI → a local server
this workspace starts) and the dataset (a user's data.yaml or the embedded synthetic set, kept in a
folder named by the hash of its params so a changed knob never reuses stale images).
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

from edgeslim.config import DatasetParams, Params, section_digest
from edgeslim.data.splits import user_dataset_sha256
from edgeslim.data.synthetic import DatasetInfo, generate_dataset
from edgeslim.data.tasks import Task
from edgeslim.errors import DataError, RegistryError


def root(p: Params) -> Path:
    path = Path(p.workspace).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def configure_environment(p: Params) -> None:
    """Process settings the params decide, before Prefect or MLflow read them.

    Prefect's ephemeral database lives in the workspace unless the user set PREFECT_HOME; MLflow's
    client retries transient HTTP errors with exponential backoff as params say (its default of
    minutes of retries would hide a dead server).
    """
    os.environ.setdefault("PREFECT_HOME", str(root(p) / "prefect"))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(p.mlflow.http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(p.mlflow.http_backoff_factor))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(p.prefect.ephemeral_startup_timeout_s))
    # Nothing may phone home where only package registries are reachable.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def mlflow_root(p: Params) -> Path:
    return root(p) / "mlflow"


def new_run_dir(p: Params, kind: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = root(p) / "runs" / f"{kind}-{stamp}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def tracking_uri(p: Params) -> str | None:
    """The configured tracking URI, or None when a local server should be used."""
    return p.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def flow_tracking_uri(p: Params, given: str | None) -> str:
    """A flow run's tracking URI: the one it was started with, else the configured one. A deployment
    run on a worker is started without one and uses the server its worker's environment names."""
    uri = given or tracking_uri(p)
    if not uri:
        raise RegistryError("no MLflow tracking URI: start the run with tracking_uri, or set MLFLOW_TRACKING_URI where it runs")
    return uri


def datasets_dir(p: Params) -> Path:
    """Where runs of this workspace share their generated datasets (one folder per params hash)."""
    return root(p) / "datasets"


def dataset_key(dp: DatasetParams, task: Task) -> str:
    """The name part of a dataset's folder: the params' hash, after the task's name for any but detect
    (so a detector's datasets keep the names they always had)."""
    digest = section_digest("dataset", dp)
    return digest if task == "detect" else f"{task}-{digest}"


def dataset(p: Params, progress: bool = True) -> DatasetInfo:
    """The dataset the params name, for ``baseline.task``, in this workspace's shared dataset folder (generated once)."""
    folder = datasets_dir(p) / f"synthetic-{dataset_key(p.dataset, p.baseline.task)}"
    return resolve_dataset(p.dataset, p.baseline.task, folder, copy_user=False, progress=progress)


def resolve_dataset(dp: DatasetParams, task: Task, folder: Path, copy_user: bool, progress: bool = True) -> DatasetInfo:
    """The user's data.yaml (``copy_user``: copied into ``folder``, so DVC versions its content), or
    the synthetic set with ``task``'s labels generated into ``folder`` (once: the folder is keyed by the params' hash)."""
    if dp.data_yaml is None:
        return generate_dataset(dp, folder, progress=progress, task=task)
    data_yaml = Path(dp.data_yaml).resolve()
    if not data_yaml.is_file():
        raise DataError(f"dataset.data_yaml {data_yaml} does not exist")
    if copy_user:
        shutil.copytree(data_yaml.parent, folder, dirs_exist_ok=True)
        data_yaml = folder / data_yaml.name
    return DatasetInfo(data_yaml.parent, data_yaml, user_dataset_sha256(data_yaml), class_names(data_yaml))


def class_names(data_yaml: Path) -> tuple[str, ...]:
    """The ``names`` of a data.yaml, as a list or an index → name mapping."""
    cfg = yaml.safe_load(data_yaml.read_text()) or {}
    names = cfg.get("names")
    names = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names or ())
    if not names:
        raise DataError(f"{data_yaml} has no 'names' list of classes")
    return names

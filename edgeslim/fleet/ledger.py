"""The registry side of paging: the per-group sequence counter and the rollout record.

Why in MLflow: the registry is already the system of record and survives any S3 bucket or broker;
a device refuses any manifest whose sequence is not above the one it runs, so the counter must
never go back, even if the bucket is emptied. It is a tag on the registered edge model, bumped
under the model's registry lock so two concurrent pagers never hand out the same number. Paging
only adds tags: it never moves an alias or creates a version.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.config import MlflowParams
from edgeslim.errors import RegistryError
from edgeslim.lineage import TAG_PREFIX
from edgeslim.registry.lock import registry_lock

TAG_VALUE_MAX = 5000  # MLflow's limit on a model version tag value


def sequence_tag(group: str) -> str:
    return f"{TAG_PREFIX}fleet.{group}.sequence"


def rollout_tag(group: str, key: str) -> str:
    return f"{TAG_PREFIX}rollout.{group}.{key}"


def claim_sequence(client: MlflowClient, model: str, group: str, holder: str, mlflow_params: MlflowParams) -> int:
    """The next sequence number for ``group`` of ``model`` (1 for the first page)."""
    m = mlflow_params
    with registry_lock(client, model, holder, m.lock_ttl_s, m.lock_timeout_s, m.lock_poll_s):
        try:
            current = int(client.get_registered_model(model).tags.get(sequence_tag(group), "0"))
            client.set_registered_model_tag(model, sequence_tag(group), str(current + 1))
        except MlflowException as exc:
            raise RegistryError(f"claiming the paging sequence of {model}/{group} failed: {exc.message}") from None
    return current + 1


def record(client: MlflowClient, model: str, version: str, group: str, facts: dict[str, str]) -> None:
    """Set ``edgeslim.rollout.<group>.<key>`` tags on the version (values capped at MLflow's limit)."""
    try:
        for key, value in facts.items():
            client.set_model_version_tag(model, version, rollout_tag(group, key), value[:TAG_VALUE_MAX])
    except MlflowException as exc:
        raise RegistryError(f"recording the rollout on {model} version {version} failed: {exc.message}") from None

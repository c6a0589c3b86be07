"""MLflow registry edge: resolve references, pull versions, log runs and register versions.

Everything here talks to a tracking server; the flow's library steps never do. Errors become
RegistryError with the name/alias/version that failed and, for aliases, the ones that exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from edgeslim.errors import RegistryError
from edgeslim.registry import pyfunc_model
from edgeslim.registry.pyfunc_model import SIGNATURE, WEIGHTS_KEY
from edgeslim.registry.references import ModelRef
from edgeslim.registry.server import is_healthy

CONSUMER_REQUIREMENTS = ("mlflow", "pandas", "ultralytics", "onnxruntime", "openvino")  # what loading a version needs (not edgeslim)
ALIAS_MOVED_TAG = "edgeslim.alias_moved"  # set after the alias moved: the publish finished


@dataclass(frozen=True)
class PulledModel:
    name: str
    version: str
    run_id: str | None
    weights: Path
    tags: dict[str, str]


def connect(tracking_uri: str) -> MlflowClient:
    """Point MLflow at ``tracking_uri``; an HTTP server that does not answer is a clear error."""
    if tracking_uri.startswith(("http://", "https://")) and not is_healthy(tracking_uri, timeout=5.0):
        raise RegistryError(f"MLflow tracking server {tracking_uri} is unreachable (no answer on /health)")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def resolve(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    """The registered version ``ref`` points at."""
    try:
        registered = client.get_registered_model(ref.name)
    except MlflowException as exc:
        if _not_found(exc):
            raise RegistryError(f"registered model {ref.name!r} does not exist on {mlflow.get_tracking_uri()}") from None
        raise RegistryError(
            f"registry lookup of {ref.name!r} failed: {exc.message}"
        ) from exc  # the cause tells a transient failure (registry/transient.py)
    try:
        if ref.alias:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        if not _not_found(exc):
            raise RegistryError(
                f"registry lookup of {ref} failed: {exc.message}"
            ) from exc  # the cause tells a transient failure (registry/transient.py)
        if ref.alias:
            known = ", ".join(sorted(registered.aliases)) or "none"
            raise RegistryError(f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {known})") from None
        raise RegistryError(f"model {ref.name!r} has no version {ref.version}") from None


def log_weights_model(weights: Path, example_image: Path | None = None, extra: dict[str, Path] | None = None) -> str:
    """Log ``weights`` as a pyfunc model in the active run; returns the model URI.

    With ``example_image`` the model also carries an input example (MLflow then checks that the
    logged model loads and predicts on it before the version can exist). ``extra`` files (other
    formats of the same model, by format) travel in the model's artifacts beside ``weights``.
    """
    example = pd.DataFrame({"image": [str(example_image)]}) if example_image else None
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=pyfunc_model.__file__,  # models from code: loads where edgeslim is not installed
        artifacts={WEIGHTS_KEY: str(weights), **{key: str(path) for key, path in (extra or {}).items()}},
        signature=SIGNATURE,
        input_example=example,
        pip_requirements=[f"{name}=={version(name)}" for name in CONSUMER_REQUIREMENTS],
    )
    return info.model_uri


def register(
    client: MlflowClient, model_uri: str, name: str, tags: dict[str, str], alias: str | None, description: str | None = None
) -> ModelVersion:
    """Create a version of ``name`` from ``model_uri`` with ``tags``; move ``alias`` to it last.

    The alias moves only after the version and all its tags exist, so a reader following the alias
    never sees a half-described version.
    """
    try:
        mv = mlflow.register_model(model_uri, name, tags=tags)
        if description:
            client.update_model_version(name, mv.version, description=description)
    except MlflowException as exc:
        raise RegistryError(
            f"registering {name} failed: {exc.message}"
        ) from exc  # the cause tells a transient failure (registry/transient.py)
    if alias:
        move_alias(client, name, str(mv.version), alias)
    return client.get_model_version(name, mv.version)


def move_alias(client: MlflowClient, name: str, version: str, alias: str) -> None:
    """Point ``alias`` at ``version``, then mark the version as fully published.

    The mark distinguishes a publish cut short between registration and alias move (resumed by
    the next identical run) from a version whose alias a person later moved elsewhere (left alone).
    """
    try:
        client.set_registered_model_alias(name, alias, version)
        client.set_model_version_tag(name, version, ALIAS_MOVED_TAG, alias)
    except MlflowException as exc:
        raise RegistryError(
            f"moving alias {alias} of {name} to version {version} failed: {exc.message}"
        ) from exc  # the cause tells a transient failure (registry/transient.py)


def published_with_key(client: MlflowClient, name: str, tag: str, key: str) -> dict | None:
    """The newest version of ``name`` whose ``tag`` equals ``key``, as ``{model, version, aliases, complete}``."""
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.`{tag}` = '{key}'")
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise RegistryError(
            f"searching versions of {name} failed: {exc.message}"
        ) from exc  # the cause tells a transient failure (registry/transient.py)
    if not found:
        return None
    newest = max(found, key=lambda v: int(v.version))
    return {"model": name, "version": str(newest.version), "aliases": list(newest.aliases), "complete": ALIAS_MOVED_TAG in newest.tags}


def download_run_file(run_id: str, name: str, dest: Path) -> Path:
    """One artifact file of a run (``report.json``, ``report.md``...)."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(dest)))
    except MlflowException as exc:
        raise RegistryError(f"run {run_id} has no artifact {name}: {exc.message}") from None


def flat_params(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested params → MLflow's flat ``section.key`` params (values as strings, 6000-char cap)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{full}."))
        else:
            out[full] = str(value)[:6000]
    return out

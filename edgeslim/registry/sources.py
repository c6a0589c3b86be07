"""Every common way an ultralytics detector reaches MLflow, resolved to one checkpoint file.

Users' models do not all arrive through edgeslim's own pyfunc. ultralytics' MLflow callback logs
``weights/best.pt`` and ``weights/last.pt`` as plain run artifacts and never calls ``log_model``;
``mlflow.pytorch.log_model`` writes a pickled module (``data/model.pth``) or, by default outside
Databricks, a ``torch.export`` program (``data/model.pt2``) that holds no ultralytics module at all;
others keep a ``best.pt`` or an exported ``.onnx`` on disk. A source reference
(:mod:`edgeslim.registry.references`) names one of them.

Whatever it is, :func:`fetch` returns a local model file (an ultralytics checkpoint, or an ONNX model
for the ONNX-only path) or fails with one line that says what was found and how to log the model instead.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.digest import file_sha256
from edgeslim.errors import CheckpointError, RegistryError
from edgeslim.models.checkpoint import save_checkpoint
from edgeslim.registry.mlflow_registry import PulledModel, resolve
from edgeslim.registry.references import SUFFIXES, ModelRef, Source

PREFERRED = ("best.pt", "last.pt")  # ultralytics' own names, in the order a user means them
PICKLED = Path("data") / "model.pth"  # mlflow.pytorch, serialization_format="pickle"
EXPORTED = Path("data") / "model.pt2"  # mlflow.pytorch, serialization_format="pt2" (the default off Databricks)


def fetch(client: MlflowClient, source: Source, dest: Path) -> PulledModel:
    """Download ``source`` into ``dest`` and return it as a local model file (checkpoint or ONNX)."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.file is not None:
        return PulledModel(source.text, _file_version(source.file), None, source.file, {})
    if source.run_id is not None:
        local = _download(
            f"runs:/{source.run_id}/{source.artifact_path}", dest, f"run {source.run_id} has no artifact {source.artifact_path!r}"
        )
        return PulledModel(source.text, source.run_id, source.run_id, checkpoint_in(local, source.text, dest), {})
    assert source.registered is not None
    mv = resolve(client, source.registered)
    local = _download(f"models:/{mv.name}/{mv.version}", dest, f"download of {mv.name} version {mv.version} failed")
    return PulledModel(mv.name, str(mv.version), mv.run_id, checkpoint_in(local, f"{mv.name} version {mv.version}", dest), dict(mv.tags))


def check_source(client: MlflowClient, source: Source) -> None:
    """Fail before any flow starts when the reference names nothing: an unknown model, alias or
    version, or a run or run artifact that does not exist (a local file was checked when parsed)."""
    if source.registered is not None:
        resolve(client, source.registered)
    elif source.run_id is not None and source.artifact_path is not None:
        missing = f"run {source.run_id} has no artifact {source.artifact_path!r}"
        try:
            client.get_run(source.run_id)
            parent, _, leaf = source.artifact_path.rpartition("/")
            listed = {Path(a.path).name: a.is_dir for a in client.list_artifacts(source.run_id, parent or None)}
            if listed.get(leaf):  # a folder: the checkpoint it would resolve to, decided before anything downloads
                files = _artifact_files(client, source.run_id, source.artifact_path)
        except MlflowException as exc:
            raise RegistryError(f"{missing}: {exc.message.splitlines()[0]}") from None
        if leaf not in listed:
            raise RegistryError(f"{missing} (its {parent or 'root'} folder holds {sorted(listed)})")
        if listed[leaf] and "MLmodel" not in files:  # an MLflow model folder resolves after download
            choose_model_file(files, f"run {source.run_id} folder {source.artifact_path!r}")


def _artifact_files(client: MlflowClient, run_id: str, folder: str) -> list[str]:
    """Every file under a run's artifact ``folder``, relative to it."""
    files: list[str] = []
    todo = [folder]
    while todo:
        for a in client.list_artifacts(run_id, todo.pop()):
            (todo if a.is_dir else files).append(a.path)
    return [str(Path(f).relative_to(folder)) for f in files]


def pull(client: MlflowClient, ref: ModelRef, dest: Path) -> PulledModel:
    """A registered version, as a local checkpoint."""
    return fetch(client, Source(str(ref), registered=ref), dest)


def _download(uri: str, dest: Path, failure: str) -> Path:
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except MlflowException as exc:
        raise RegistryError(f"{failure}: {exc.message.splitlines()[0]}") from None


def _file_version(path: Path) -> str:
    """A local file's version: the start of its content digest (same file, same publish key)."""
    return file_sha256(path)[:12]


def checkpoint_in(local: Path, label: str, dest: Path) -> Path:
    """The checkpoint inside a downloaded artifact: the file itself; an MLflow model folder (edgeslim's
    pyfunc keeps it under ``artifacts/``; ``mlflow.pytorch`` pickles the module, re-saved here as an
    ultralytics checkpoint); or a plain folder of ``.pt`` files (``best.pt`` before ``last.pt``)."""
    if local.is_file():
        return local
    if (local / PICKLED).is_file():
        return _from_pickled_module(local / PICKLED, label, dest)
    if (local / EXPORTED).is_file():
        raise CheckpointError(
            f"{label} is an mlflow.pytorch pt2 (torch.export) program, which holds no ultralytics model to prune or fuse: "
            f"log it with mlflow.pytorch.log_model(model, serialization_format='pickle'), or log the .pt file and "
            f"run `edgeslim register runs:/<run_id>/<path> --name NAME`"
        )
    folder = local / "artifacts" if (local / "MLmodel").is_file() and (local / "artifacts").is_dir() else local
    return folder / choose_model_file([str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file()], label)


def choose_model_file(files: list[str], label: str) -> str:
    """The model file a folder means (paths relative to it): its one ``.pt`` checkpoint, ``best.pt`` before
    ``last.pt`` among several, else its one ``.onnx``; any other ambiguity names the candidates."""
    for suffix in SUFFIXES:
        candidates = sorted(f for f in files if f.endswith(suffix))
        for name in PREFERRED:
            named = [f for f in candidates if Path(f).name == name]
            if len(named) == 1:
                return named[0]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            kind = "checkpoints and none is best.pt or last.pt" if suffix == ".pt" else "ONNX models"
            raise CheckpointError(f"{label} holds several {kind}: {', '.join(candidates)}; name one with runs:/<run_id>/<path>")
    raise CheckpointError(f"{label} holds no .pt or .onnx model (found: {sorted(files)[:10]})")


def _from_pickled_module(path: Path, label: str, dest: Path) -> Path:
    """An ``mlflow.pytorch`` pickle: the module itself, saved in ultralytics' checkpoint layout."""
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (torch raises many types for truncated/foreign files)
        raise CheckpointError(f"{label}: {PICKLED} is corrupt or not a PyTorch file: {exc}") from None
    args = getattr(model, "args", None)
    return save_checkpoint(model, {"train_args": dict(args) if isinstance(args, dict) else {}}, dest / "model.pt")

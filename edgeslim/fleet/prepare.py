"""What a page sends, for one registered version: its artifacts in S3, each with its golden set, and the manifest.

Shared by a page to the whole group, each stage of a staged rollout and a fleet rollback (which
sends the previous version again under a new sequence), so all three build manifests one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.agent import ir_archive
from edgeslim.config import FleetGoldenParams, Params
from edgeslim.errors import RegistryError
from edgeslim.fleet import onnx_info
from edgeslim.fleet.golden import write_golden
from edgeslim.fleet.manifest import Artifact, Manifest, utc_iso
from edgeslim.fleet.store import FleetStore
from edgeslim.lineage import TAG_PREFIX, TASK_TAG
from edgeslim.runtime.formats import IR_SUFFIX

# Version tags copied into the manifest so a device can tell where its model came from.
LINEAGE_KEYS = (
    "source_model",
    "source_version",
    "source_run_id",
    "run_id",
    "git_sha",
    "params_hash",
    "dataset_sha256",
    "calibration_sha256",
    "metric",
)


def _download(tracking_uri: str, model: str, version: str, dest: Path, formats: list[str]) -> list[tuple[Path, str]]:
    """The version's ONNX files and IR folders with their formats, in the order its
    ``edgeslim.formats`` tag gives (preferred first), fetched with explicit URIs (never the
    process-global registry)."""
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model}/{version}", dst_path=str(dest), tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        )
    except MlflowException as exc:
        raise RegistryError(f"download of {model} version {version} failed: {exc.message}") from None
    found = [(path, onnx_info.describe(path)[0]) for path in sorted((local / "artifacts").glob("*.onnx"))]
    found += [(path, onnx_info.ir_format(path)) for path in sorted((local / "artifacts").glob(f"*{IR_SUFFIX}"))]
    if not found:
        raise RegistryError(f"{model} version {version} holds no .onnx or OpenVINO artifact to page")
    rank = {fmt: i for i, fmt in enumerate(formats)}
    return sorted(found, key=lambda item: rank.get(item[1], len(rank)))


def _manifest(p: Params, model: str, version: str, sequence: int, tags: dict[str, str], artifacts: tuple[Artifact, ...]) -> Manifest:
    now = datetime.now(UTC)
    return Manifest(
        model=model,
        version=version,
        group=p.fleet.group,
        sequence=sequence,
        issued_at=utc_iso(now),
        expires_at=utc_iso(now + timedelta(seconds=p.fleet.manifest_ttl_s)),
        key_id="",
        artifacts=artifacts,
        lineage={k: tags[f"{TAG_PREFIX}{k}"] for k in LINEAGE_KEYS if f"{TAG_PREFIX}{k}" in tags},
        task=tags.get(TASK_TAG, "detect"),  # a version published before tasks were tagged is a detector
    )


def _stored(store: FleetStore, model: str, path: Path, fmt: str, golden: FleetGoldenParams) -> Artifact:
    """One artifact in S3 (an IR folder as its deterministic tar, with each file's sha256) and its golden set."""
    is_ir = path.is_dir()
    io = onnx_info.ir_io(path) if is_ir else onnx_info.describe(path)[1]
    wire = ir_archive.pack(path, path.with_name(path.name + ir_archive.SUFFIX)) if is_ir else path
    stored = store.upload_artifact(wire, model)
    check = {}
    if golden.images:
        ref = store.upload_artifact(write_golden(path, fmt, golden.images, io), model)
        check = {"uri": ref.url, "size": ref.size, "sha256": ref.sha256, "tolerance": golden.tolerance}
    files = ir_archive.files_of(path) if is_ir else {}
    return Artifact(name=wire.name, format=fmt, uri=stored.url, size=stored.size, sha256=stored.sha256, io=io, golden=check, files=files)


@dataclass(frozen=True)
class Prepared:
    """A version ready to page: its registry tags and its artifacts, uploaded (preferred format first)."""

    model: str
    version: str
    tags: dict[str, str]
    artifacts: tuple[Artifact, ...]

    def manifest(self, p: Params, sequence: int) -> Manifest:
        return _manifest(p, self.model, self.version, sequence, self.tags, self.artifacts)


def prepare(client: MlflowClient, tracking_uri: str, p: Params, model: str, version: str, workdir: Path, store: FleetStore) -> Prepared:
    """Download ``model`` version ``version`` from the registry and put its artifacts (and golden sets) in S3."""
    try:
        tags = dict(client.get_model_version(model, version).tags)
    except MlflowException as exc:
        raise RegistryError(f"{model} version {version} cannot be paged: {exc.message}") from None
    files = _download(tracking_uri, model, version, workdir, tags.get(f"{TAG_PREFIX}formats", "").split(","))
    return Prepared(model, version, tags, tuple(_stored(store, model, path, fmt, p.fleet.golden) for path, fmt in files))

"""Page a registered edge version to a device group: upload, sign, notify, track, record.

Order matters: the sequence is claimed and the artifact and manifest are in S3 before any device
is told, so every notification points at something that exists; the status watch starts before
the first notification, so no acknowledgement is missed; the outcome (channels, devices) is
written on the model version whether or not a channel failed, then a failed channel is raised by
name. Nothing here moves an alias.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from edgeslim.config import Params
from edgeslim.errors import ChannelError, RegistryError
from edgeslim.fleet import ledger, onnx_info
from edgeslim.fleet.channels import OK, notify_all
from edgeslim.fleet.manifest import Artifact, Manifest, utc_iso
from edgeslim.fleet.rollout import RolloutResult, StatusWatch
from edgeslim.fleet.signing import load_private_key, sign
from edgeslim.fleet.store import FleetStore
from edgeslim.lineage import TAG_PREFIX

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
)


def _download(tracking_uri: str, model: str, version: str, dest: Path, formats: list[str]) -> list[Path]:
    """The version's ONNX files in the order its ``edgeslim.formats`` tag gives (preferred first),
    fetched with explicit URIs (never the process-global registry)."""
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model}/{version}", dst_path=str(dest), tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        )
    except MlflowException as exc:
        raise RegistryError(f"download of {model} version {version} failed: {exc.message}") from None
    found = sorted((local / "artifacts").glob("*.onnx"))
    if not found:
        raise RegistryError(f"{model} version {version} holds no .onnx artifact to page")
    rank = {fmt: i for i, fmt in enumerate(formats)}
    return sorted(found, key=lambda path: rank.get(onnx_info.describe(path)[0], len(rank)))


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
    )


def _stored(store: FleetStore, model: str, path: Path) -> Artifact:
    fmt, io = onnx_info.describe(path)
    stored = store.upload_artifact(path, model)
    return Artifact(name=path.name, format=fmt, uri=stored.url, size=stored.size, sha256=stored.sha256, io=io)


def _track(p: Params, watch: StatusWatch | None, sequence: int, channels: dict[str, str]) -> RolloutResult | None:
    if watch is None or OK not in channels.values():
        return None
    return watch.wait(sequence, p.fleet.rollout.wait_s, p.fleet.rollout.devices)


def _untracked_reason(channels: dict[str, str], tracking_error: str | None) -> str:
    if OK not in channels.values():
        return "no channel delivered the manifest"
    return tracking_error or "fleet.rollout.wait_s is 0"


def page_version(tracking_uri: str, p: Params, model: str, version: str, workdir: Path, log: Callable[[str], None] = print) -> dict:
    """Page ``model`` version ``version`` to ``fleet.group``; returns the outcome (see README)."""
    fleet = p.fleet
    client = MlflowClient(tracking_uri, tracking_uri)
    try:
        tags = dict(client.get_model_version(model, version).tags)
    except MlflowException as exc:
        raise RegistryError(f"{model} version {version} cannot be paged: {exc.message}") from None
    key = load_private_key(fleet.signing_key)
    files = _download(tracking_uri, model, version, workdir, tags.get(f"{TAG_PREFIX}formats", "").split(","))
    store = FleetStore(fleet.s3)
    store.ensure_bucket()
    artifacts = tuple(_stored(store, model, path) for path in files)
    sequence = ledger.claim_sequence(client, model, fleet.group, f"page-{uuid.uuid4().hex[:8]}", p.mlflow)
    manifest = _manifest(p, model, version, sequence, tags, artifacts)
    envelope = sign(manifest, key)
    manifest_uri = store.put_manifest(model, fleet.group, sequence, envelope)
    log(f"paging {model} v{version} to group {fleet.group}: sequence {sequence}, manifest {manifest_uri}")

    tracking_error = None
    with ExitStack() as stack:
        watch = None
        if fleet.rollout.wait_s > 0:
            try:
                watch = stack.enter_context(StatusWatch(fleet.mqtt, fleet.group))
            except OSError as exc:  # paging goes on; the outcome says the rollout was not tracked
                tracking_error = f"device statuses unavailable: {exc}"
        channels = notify_all(fleet, manifest, envelope, log)
        rollout = _track(p, watch, sequence, channels)

    outcome = {
        "model": model,
        "version": version,
        "group": fleet.group,
        "sequence": sequence,
        "manifest": manifest_uri,
        "sha256": artifacts[0].sha256,  # the preferred format's
        "artifacts": {a.format: a.sha256 for a in artifacts},
        "channels": channels,
        "rollout": rollout.to_dict() if rollout else None,
        "tracking_error": tracking_error,
    }
    facts = {
        "sequence": str(sequence),
        "manifest": manifest_uri,
        "sha256": ",".join(f"{a.format}={a.sha256}" for a in artifacts),
        "channels": "; ".join(f"{c}={v}" for c, v in channels.items()),
        "result": rollout.summary() if rollout else f"not tracked: {_untracked_reason(channels, tracking_error)}",
    }
    devices = rollout or RolloutResult(sequence)  # written even when empty: no stale lists from an earlier page
    facts.update(
        updated=",".join(devices.updated), failed="; ".join(f"{d}: {r}" for d, r in devices.failed.items()), silent=",".join(devices.silent)
    )
    ledger.record(client, model, version, fleet.group, facts)
    log(f"rollout of {model} v{version} to {fleet.group}: {facts['result']}")
    return outcome


def raise_for_channels(outcome: dict) -> None:
    """One error line naming every channel that failed (after the outcome was recorded)."""
    failed = {c: v for c, v in outcome["channels"].items() if v != OK}
    if failed:
        detail = "; ".join(f"channel {c} {v}" for c, v in failed.items())
        raise ChannelError(
            f"paging {outcome['model']} v{outcome['version']} to group {outcome['group']} (sequence {outcome['sequence']}): {detail}. "
            f"Registry aliases unchanged; outcome recorded in tags {ledger.rollout_tag(outcome['group'], '*')}"
        )

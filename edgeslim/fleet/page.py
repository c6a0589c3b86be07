"""Page a registered edge version to a device group: upload, sign, notify, track, record.

Order matters: the sequence is claimed and the artifact and manifest are in S3 before any device
is told, so every notification points at something that exists; the status watch starts before
the first notification, so no acknowledgement is missed; the outcome (channels, devices) is
written on the model version whether or not a channel failed, then a failed channel is raised by
name. A page to the whole group moves no alias; a staged rollout (``edgeslim.fleet.staged``) moves
``production`` when it completes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from mlflow import MlflowClient

from edgeslim.config import Params
from edgeslim.errors import ChannelError, RolloutAborted
from edgeslim.fleet import ledger
from edgeslim.fleet.channels import OK, notify_all
from edgeslim.fleet.prepare import Prepared, prepare
from edgeslim.fleet.rollout import RolloutResult, StatusWatch
from edgeslim.fleet.signing import load_private_key, sign
from edgeslim.fleet.staged import ABORTED, StagedContext, StageReport, staged_page
from edgeslim.fleet.store import FleetStore


def _track(p: Params, watch: StatusWatch | None, sequence: int, channels: dict[str, str]) -> RolloutResult | None:
    if watch is None or OK not in channels.values():
        return None
    return watch.wait(sequence, p.fleet.rollout.wait_s, p.fleet.rollout.devices)


def _untracked_reason(channels: dict[str, str], tracking_error: str | None) -> str:
    if OK not in channels.values():
        return "no channel delivered the manifest"
    return tracking_error or "fleet.rollout.wait_s is 0"


def _head(prepared: Prepared, group: str, sequence: int) -> dict:
    """What every page outcome starts with: the version, the group, the sequence and the files' sha256."""
    return {
        "model": prepared.model,
        "version": prepared.version,
        "group": group,
        "sequence": sequence,
        "sha256": prepared.artifacts[0].sha256,  # the preferred format's
        "artifacts": {a.format: a.sha256 for a in prepared.artifacts},
    }


def _staged(
    ctx: StagedContext, prepared: Prepared, tracking_uri: str, workdir: Path, on_stage: Callable[[StageReport], None] | None
) -> dict:
    def previous(version: str) -> Prepared:
        return prepare(ctx.client, tracking_uri, ctx.p, prepared.model, version, workdir / f"previous-v{version}", ctx.store)

    result = staged_page(ctx, prepared, previous, on_stage)
    return {
        **_head(prepared, ctx.p.fleet.group, result.sequence),
        "channels": {"mqtt": OK},
        "staged": result.to_dict(),
        "rollout": None,
        "tracking_error": None,
    }


def page_version(
    tracking_uri: str,
    p: Params,
    model: str,
    version: str,
    workdir: Path,
    log: Callable[[str], None] = print,
    on_stage: Callable[[StageReport], None] | None = None,
) -> dict:
    """Page ``model`` version ``version`` to ``fleet.group``, all at once or (``fleet.rollout.stages``)
    in stages; returns the outcome (see README)."""
    fleet = p.fleet
    client = MlflowClient(tracking_uri, tracking_uri)
    key = load_private_key(fleet.signing_key)
    store = FleetStore(fleet.s3)
    store.ensure_bucket()
    prepared = prepare(client, tracking_uri, p, model, version, workdir, store)
    if fleet.rollout.stages:
        return _staged(StagedContext(p, client, store, key, log), prepared, tracking_uri, workdir, on_stage)
    artifacts = prepared.artifacts
    sequence = ledger.claim_sequence(client, model, fleet.group, f"page-{uuid.uuid4().hex[:8]}", p.mlflow)
    manifest = prepared.manifest(p, sequence)
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
        **_head(prepared, fleet.group, sequence),
        "manifest": manifest_uri,
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


def raise_for_outcome(outcome: dict) -> None:
    """One error line naming every channel that failed, or why a staged rollout aborted (after the
    outcome was recorded)."""
    staged = outcome.get("staged")
    if staged and staged["state"] == ABORTED:
        raise RolloutAborted(
            f"staged rollout of {outcome['model']} v{outcome['version']} to group {outcome['group']} aborted: {staged['reason']}. "
            f"{len(staged['rolled_back'])} devices rolled back, {len(staged['not_rolled_back'])} not confirmed; "
            f"production alias unchanged; outcome in tags {ledger.rollout_tag(outcome['group'], '*')}"
        )
    failed = {c: v for c, v in outcome["channels"].items() if v != OK}
    if failed:
        detail = "; ".join(f"channel {c} {v}" for c, v in failed.items())
        raise ChannelError(
            f"paging {outcome['model']} v{outcome['version']} to group {outcome['group']} (sequence {outcome['sequence']}): {detail}. "
            f"Registry aliases unchanged; outcome recorded in tags {ledger.rollout_tag(outcome['group'], '*')}"
        )

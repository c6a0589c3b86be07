"""Staged rollouts on loopback: a real `mlflow server`, mosquitto, a moto S3 server, and a fleet of 50
simulated devices in one process (`python -m edgeslim.agent.simulator`), each on the real agent code path
with its own state folder.

A clean rollout passes canary, wave and all, pauses and resumes on command, never touches a held device
and moves @production. With 30% of devices computing wrong outputs for the new model, their golden-set
check fails, the canary aborts, every device is back on the previous model (checked by the sha256 of
the file `current` points at), and a later rollout still works, after which the replayed rollback
manifest is refused."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import pytest
from conftest import error_line, run_cli
from fleet_support import REPO, S3_ENV, StatusLog, fleet_params, sha256
from mlflow import MlflowClient

from benchmarks.tiny_onnx import register_tiny_versions
from edgeslim.agent.simulator import SimulatorProcess
from edgeslim.config import Params
from edgeslim.errors import RolloutAborted
from edgeslim.fleet.channels import mqtt as mqtt_channel
from edgeslim.fleet.control import request
from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.page import page_version, raise_for_outcome
from edgeslim.fleet.store import FleetStore
from edgeslim.registry import mlflow_registry as reg

EDGE = "tiny-rollout-edge"
DEVICES = 50
BALLAST = 16 * 1024  # bytes: each download is a real transfer, still quick
START_S = 60
STAGE_TAG = "edgeslim.rollout.{group}.{key}"
FAST = [
    "fleet.rollout.rate_per_min=6000",
    "fleet.rollout.report_timeout_s=30",
    "fleet.rollout.control_poll_s=0.3",
    "fleet.rollout.wait_s=60",
]


def plan(canary_soak_s: float, canary_pct: float, canary_min: int, abort: float) -> str:
    stages = [
        f"{{name: canary, percent: {canary_pct}, min_devices: {canary_min}, soak_s: {canary_soak_s}, success: 0.9, abort: {abort}, min_reports: 3}}",
        "{name: wave, percent: 50, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 5}",
        "{name: all, percent: 100, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 5}",
    ]
    return f"fleet.rollout.stages=[{', '.join(stages)}]"


@pytest.fixture(scope="module")
def versions(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three versions of a tiny edge model on the real server."""
    client = reg.connect(mlflow_server)
    mlflow.set_experiment("rollout")
    folder = tmp_path_factory.mktemp("rollout-models")
    return register_tiny_versions(client, EDGE, {"1": 21, "2": 22, "3": 23, "4": 24}, folder, BALLAST, ir_versions=("4",))


def _fleet(tmp: Path, keys: Path, overrides: list[str], *extra: str) -> SimulatorProcess:
    fleet = SimulatorProcess(tmp / "fleet", DEVICES, keys, REPO / "params.yaml", overrides, *extra)
    fleet.wait_ready(START_S)
    return fleet


def _wait_roster(p: Params, count: int) -> None:
    status = StatusLog(p)
    try:
        status.wait_for(lambda _m: len({m["device"] for m in status.messages}) >= count)
    finally:
        status.close()


def _seed(mlflow_server: str, p: Params, tmp: Path, version: str) -> None:
    """Every device on ``version``: a page to the whole group at once (no stages)."""
    outcome = page_version(mlflow_server, p, EDGE, version, tmp / f"seed-{version}")
    assert len(outcome["rollout"]["updated"]) == DEVICES, outcome["rollout"]


def _tag(client: MlflowClient, version: str, group: str, key: str) -> str | None:
    return client.get_model_version(EDGE, version).tags.get(STAGE_TAG.format(group=group, key=key))


def _past_the_canary(mlflow_server: str, p: Params, version: str, tmp: Path, client: MlflowClient) -> tuple[threading.Thread, dict]:
    """A staged page of ``version`` in a thread, returned once its canary was judged (and its soak begins)."""
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(page_version(mlflow_server, p, EDGE, version, tmp / f"page-v{version}")))
    runner.start()
    deadline = time.monotonic() + 60
    while _tag(client, version, p.fleet.group, "stage.canary") is None:
        assert time.monotonic() < deadline and runner.is_alive(), f"the canary of v{version} did not finish"
        time.sleep(0.1)
    return runner, outcome


def _cli(mlflow_server: str, overrides: list[str], tmp: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--params", str(REPO / "params.yaml"), "-S", f"workspace={tmp / 'ws'}", *(a for o in overrides for a in ("-S", o))]
    return run_cli(*args, *flags, env_extra={"MLFLOW_TRACKING_URI": mlflow_server, **S3_ENV}, timeout=300)


def test_rollout_passes_its_stages_pauses_resumes_skips_the_held_device_and_moves_production(
    mlflow_server, versions, broker, s3, keys, tmp_path
):
    group, held = "stages", "sim-0007"
    extra = [*FAST, f"fleet.hold=[{held}]"]
    p_all, base = fleet_params(broker, s3, keys, group, *extra)
    p_staged, staged = fleet_params(broker, s3, keys, group, *extra, plan(canary_soak_s=6, canary_pct=10, canary_min=3, abort=0.2))
    fleet = _fleet(tmp_path, keys, base)
    client = MlflowClient(mlflow_server, mlflow_server)
    try:
        _wait_roster(p_all, DEVICES)
        _seed(mlflow_server, p_all, tmp_path, "1")
        runner, outcome = _past_the_canary(mlflow_server, p_staged, "2", tmp_path, client)
        deadline = time.monotonic() + 60
        # The library call the CLI makes (the CLI's own start-up is longer than the canary's soak); the CLI resumes below.
        assert "pause requested" in request(client, client.get_model_version(EDGE, "2"), group, "pause")
        while _tag(client, "2", group, "state") != "paused":
            assert time.monotonic() < deadline, "the rollout did not pause"
            time.sleep(0.1)
        on_v2 = sum(sha == sha256(versions["2"]) for sha in fleet.current().values())
        time.sleep(3)  # longer than the canary's remaining soak: a running rollout would start the wave now
        assert sum(sha == sha256(versions["2"]) for sha in fleet.current().values()) == on_v2, "devices were updated while paused"
        shown = _cli(mlflow_server, staged, tmp_path, "rollout", "status", f"{EDGE}:2", "--group", group)
        assert "state: paused" in shown.stdout and "stage.canary: passed" in shown.stdout, shown.stdout
        assert _cli(mlflow_server, staged, tmp_path, "rollout", "resume", f"{EDGE}:2", "--group", group).returncode == 0
        runner.join(120)
        assert not runner.is_alive()

        result = outcome["staged"]
        assert result["state"] == "completed", result
        sizes = {s["name"]: len(s["devices"]) for s in result["stages"]}
        assert sizes == {"canary": 5, "wave": 20, "all": 24}, sizes  # 49 eligible: ceil(4.9), ceil(24.5) − 5, the rest
        assert result["held"] == [held] and held not in {d for s in result["stages"] for d in s["devices"]}
        assert all(s["verdict"] == "passed" and s["golden_error_max"] is not None for s in result["stages"])
        current = fleet.current()
        assert current.pop(held) == sha256(versions["1"]), "the held device was updated"
        assert set(current.values()) == {sha256(versions["2"])}
        assert client.get_model_version_by_alias(EDGE, "production").version == "2"
        assert _tag(client, "2", group, "outcome") == "completed"

        again = _cli(mlflow_server, staged, tmp_path, "rollout", "pause", f"{EDGE}:2", "--group", group)
        assert again.returncode == 2 and "it is completed" in error_line(again)
        none = _cli(mlflow_server, staged, tmp_path, "rollout", "status", f"{EDGE}:1", "--group", group)
        assert none.returncode == 2 and "has no staged rollout to group stages" in error_line(none)

        # An operator's abort during the canary's soak: the canary goes back to v2, production stays.
        runner, outcome = _past_the_canary(mlflow_server, p_staged, "3", tmp_path, client)
        request(client, client.get_model_version(EDGE, "3"), group, "abort")
        runner.join(120)
        assert outcome["staged"]["state"] == "aborted" and "operator" in outcome["staged"]["reason"]
        assert len(outcome["staged"]["rolled_back"]) == sizes["canary"]
        assert set(fleet.current().values()) == {sha256(versions["1"]), sha256(versions["2"])}  # v1: the held device
        assert client.get_model_version_by_alias(EDGE, "production").version == "2"
    finally:
        fleet.stop()


def test_wrong_outputs_abort_the_canary_roll_the_fleet_back_and_a_replayed_rollback_is_refused(
    mlflow_server, versions, broker, s3, keys, tmp_path
):
    group = "faulty"
    p_all, base = fleet_params(broker, s3, keys, group, *FAST)
    p_staged, staged = fleet_params(broker, s3, keys, group, *FAST, plan(canary_soak_s=0, canary_pct=20, canary_min=5, abort=0.1))
    fleet = _fleet(tmp_path, keys, base, "--fault", "wrong=0.3", "--fault-for", sha256(versions["2"]))
    client = MlflowClient(mlflow_server, mlflow_server)
    v1, v3 = sha256(versions["1"]), sha256(versions["3"])
    try:
        _wait_roster(p_all, DEVICES)
        _seed(mlflow_server, p_all, tmp_path, "1")
        production = client.get_registered_model(EDGE).aliases.get("production")  # another test's rollout may have moved it

        aborted = _cli(mlflow_server, staged, tmp_path, "page", f"{EDGE}:2")
        assert aborted.returncode == RolloutAborted.exit_code, aborted.stderr[-3000:]
        assert "aborted: stage canary" in error_line(aborted)
        reason = _tag(client, "2", group, "reason") or ""
        assert _tag(client, "2", group, "outcome") == "aborted" and "stage canary" in reason
        assert "golden set" in reason, reason  # the first failure named: outputs differ from the pipeline's
        canary = _tag(client, "2", group, "stage.canary") or ""
        worst = re.search(r"golden error ≤ ([0-9.e+-]+)", canary)  # over every device that reported one, failed ones too
        assert worst and float(worst.group(1)) > p_staged.fleet.golden.tolerance, canary
        assert set(fleet.current().values()) == {v1}, "a device is not back on the previous model"
        assert client.get_registered_model(EDGE).aliases.get("production") == production, "an aborted rollout moved production"
        rollback_sequence = int(_tag(client, "2", group, "sequence") or 0) + 1

        result = page_version(mlflow_server, p_staged, EDGE, "3", tmp_path / "page3")
        raise_for_outcome(result)
        assert result["staged"]["state"] == "completed"
        assert set(fleet.current().values()) == {v3}
        assert client.get_model_version_by_alias(EDGE, "production").version == "3"

        store = FleetStore(p_all.fleet.s3)
        envelope = store.s3.get_object(
            Bucket=p_all.fleet.s3.bucket, Key=store.object_key(EDGE, group, "manifests", f"{rollback_sequence}.json")
        )
        replay = envelope["Body"].read()
        status = StatusLog(p_all)
        try:
            mqtt_channel.send(
                p_all.fleet, Manifest.from_dict(json.loads(replay)["manifest"]), replay
            )  # the rollback, again, to the whole group
            refused = status.wait_for(lambda m: m["sequence"] == rollback_sequence and m["state"] == "failed")
            assert "replayed or older" in refused["reason"]
        finally:
            status.close()
        time.sleep(1)
        assert set(fleet.current().values()) == {v3}, "a replayed rollback manifest was applied"

        ir = page_version(mlflow_server, p_staged, EDGE, "4", tmp_path / "page4")  # an OpenVINO IR, stage by stage
        raise_for_outcome(ir)
        assert ir["staged"]["state"] == "completed" and set(fleet.current().values()) == {sha256(versions["4"])}
    finally:
        fleet.stop()

"""Paging from the registry: a real `mlflow server`, mosquitto, a moto server (S3 and IoT) and real
agents. All three channels deliver; the rollout lands on the model version as tags; a broker that is
down fails the page by name, moves nothing in the registry, and the device keeps serving."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import boto3
import mlflow
import pytest
from conftest import error_line, run_cli
from fleet_support import REPO, AgentProcess, StatusLog, assert_serving, fleet_params, sha256
from mlflow import MlflowClient

from benchmarks.tiny_onnx import register_tiny_versions
from edgeslim.fleet.local import LocalService, start_broker, wait_for_port
from edgeslim.fleet.page import page_version
from edgeslim.fleet.signing import load_public_keys, verify
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import free_port

EDGE = "tiny-fleet-edge"
WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="module")
def registered(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions of an edge model (tiny ONNX files) registered on the real server, v2 @candidate."""
    client = reg.connect(mlflow_server)
    mlflow.set_experiment("fleet")
    return register_tiny_versions(client, EDGE, {"1": 11, "2": 12}, tmp_path_factory.mktemp("registered"))


def _snapshot(client: MlflowClient) -> dict:
    rm = client.get_registered_model(EDGE)
    return {"aliases": dict(rm.aliases), "versions": sorted(v.version for v in client.search_model_versions(f"name = '{EDGE}'"))}


def test_page_through_mqtt_webhook_and_iot_jobs_records_the_rollout(mlflow_server, registered, broker, s3, keys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    iot = boto3.client("iot", endpoint_url=s3.url, region_name="us-east-1")
    thing = iot.create_thing(thingName="cam-iot")["thingArn"]
    hook = free_port()
    p, overrides = fleet_params(
        broker,
        s3,
        keys,
        "all-channels",
        "fleet.channels=[mqtt, webhook, iot_jobs]",
        f"fleet.webhook.urls=[http://127.0.0.1:{hook}/manifest]",
        f"fleet.iot_jobs.endpoint_url={s3.url}",
        f"fleet.iot_jobs.targets=[{thing}]",
        "fleet.rollout.wait_s=30",
        "fleet.rollout.devices=[cam-mqtt]",
    )
    status = StatusLog(p)
    mqtt_agent = AgentProcess("cam-mqtt", tmp_path / "cam-mqtt", keys, overrides)
    hook_agent = AgentProcess(
        "cam-hook",
        tmp_path / "cam-hook",
        keys,
        overrides,
        "--no-mqtt",
        "--listen",
        f"127.0.0.1:{hook}",
        env={"EDGESLIM_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    client = MlflowClient(mlflow_server, mlflow_server)
    before = _snapshot(client)
    try:
        status.state("cam-mqtt", "online")
        wait_for_port(LocalService("agent webhook listener", hook, hook_agent.proc, hook_agent.log))
        outcome = page_version(mlflow_server, p, EDGE, "2", tmp_path / "page")
        assert outcome["channels"] == {"mqtt": "ok", "webhook": "ok", "iot_jobs": "ok"}
        assert outcome["rollout"]["updated"] == ["cam-mqtt"] and not outcome["rollout"]["failed"] and not outcome["rollout"]["silent"]
        assert_serving(tmp_path / "cam-mqtt", sha256(registered["2"]))
        hook_state = _await_state(tmp_path / "cam-hook", outcome["sequence"])
        assert hook_state["active"]["sha256"] == sha256(registered["2"]), hook_agent.text()[-2000:]

        jobs = iot.list_jobs()["jobs"]
        document = iot.get_job_document(jobId=jobs[-1]["jobId"])["document"]
        manifest = verify(document.encode(), load_public_keys(keys))
        assert (manifest.model, manifest.version, manifest.sequence) == (EDGE, "2", outcome["sequence"])
        assert manifest.lineage["source_version"] == "2"

        tags = client.get_model_version(EDGE, "2").tags
        prefix = "edgeslim.rollout.all-channels."
        assert tags[prefix + "updated"] == "cam-mqtt" and tags[prefix + "failed"] == "" and tags[prefix + "silent"] == ""
        assert tags[prefix + "channels"] == "mqtt=ok; webhook=ok; iot_jobs=ok"
        assert tags[prefix + "sequence"] == str(outcome["sequence"]) and tags[prefix + "result"] == "1 updated, 0 failed, 0 silent"
        assert _snapshot(client) == before, "paging adds tags only: no alias moves, no new version"
    finally:
        mqtt_agent.stop()
        hook_agent.stop()
        status.close()


def _await_state(state_dir: Path, sequence: int, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        path = state_dir / "state.json"
        if path.exists():
            state = json.loads(path.read_text())
            if state["sequence"] >= sequence and state["active"]:
                return state
        time.sleep(0.1)
    raise AssertionError(f"{state_dir.name} did not reach sequence {sequence}")


def test_broker_down_at_publish_fails_by_name_then_recovers(mlflow_server, registered, s3, keys, tmp_path):
    own = start_broker(tmp_path / "broker")  # this test stops and restarts it
    # The restarted broker starts empty (no retained statuses): name the device so the rollout waits for its reconnect.
    p, overrides = fleet_params(
        own, s3, keys, "outage", "fleet.rollout.wait_s=30", "fleet.rollout.devices=[cam-o]", "fleet.mqtt.keepalive_s=2"
    )
    cli_args = ["--params", str(REPO / "params.yaml"), "-S", f"workspace={tmp_path / 'ws'}", *(a for o in overrides for a in ("-S", o))]
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    agent = AgentProcess("cam-o", tmp_path / "cam-o", keys, overrides)
    client = MlflowClient(mlflow_server, mlflow_server)
    try:
        status = StatusLog(p)
        status.state("cam-o", "online")
        status.close()
        assert page_version(mlflow_server, p, EDGE, "1", tmp_path / "page1")["rollout"]["updated"] == ["cam-o"]
        assert_serving(tmp_path / "cam-o", sha256(registered["1"]))

        own.stop()  # the broker dies before the next publish
        before = _snapshot(client)
        down = run_cli("page", f"{EDGE}:2", *cli_args, env_extra=env, timeout=120)
        assert down.returncode == 2
        line = error_line(down)
        assert "channel mqtt failed after 2 tries" in line and "Connection refused" in line, line
        assert "try 1/2 failed" in down.stdout, "the retry must be visible"
        tags = client.get_model_version(EDGE, "2").tags
        assert tags["edgeslim.rollout.outage.channels"].startswith("mqtt=failed after 2 tries")
        assert tags["edgeslim.rollout.outage.result"] == "not tracked: no channel delivered the manifest"
        assert _snapshot(client) == before
        assert agent.proc.poll() is None
        assert_serving(tmp_path / "cam-o", sha256(registered["1"]))

        with own.log.open("ab") as sink:  # same command, same port: the agent reconnects by itself
            proc = subprocess.Popen(own.proc.args, stdout=sink, stderr=subprocess.STDOUT)
        own = wait_for_port(LocalService("mosquitto", own.port, proc, own.log))
        again = page_version(mlflow_server, p, EDGE, "2", tmp_path / "page2")
        assert again["channels"] == {"mqtt": "ok"} and again["rollout"]["updated"] == ["cam-o"]
        assert client.get_model_version(EDGE, "2").tags["edgeslim.rollout.outage.result"] == "1 updated, 0 failed, 0 silent"
        assert_serving(tmp_path / "cam-o", sha256(registered["2"]))
    finally:
        agent.stop()
        own.stop()

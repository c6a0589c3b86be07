"""The tracking server dies in the middle of publishing: no alias may point at a partial version,
the CLI says so in one line, and the next run on the restarted server finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
from conftest import NO_PRUNE, REPO, error_line, run_cli
from mlflow import MlflowClient

from edgeslim.lineage import PUBLISH_KEY_TAG, RUN_ID_TAG
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import free_port, start_server
from edgeslim.registry.sources import pull

EDGE = "pcb-detector-edge"
KILL_AT = "registering a new version of"  # printed by the publish step right before the model upload


def _assert_alias_on_complete_version(client: MlflowClient) -> str | None:
    try:
        mv = client.get_model_version_by_alias(EDGE, "candidate")
    except mlflow.exceptions.MlflowException:
        return None
    assert mv.tags[RUN_ID_TAG] and mv.tags[PUBLISH_KEY_TAG] and mv.tags["edgeslim.gate.map_ratio.passed"] == "True"
    assert client.get_run(mv.tags[RUN_ID_TAG]).data.metrics["onnx-int8.map50_95"] > 0
    return str(mv.version)


def test_server_killed_mid_publish(champion: str, params_file: Path, tmp_path: Path):
    root, port = tmp_path / "mlflow", free_port()
    server = start_server(root, "127.0.0.1", port, timeout_s=120, detach=True)
    # The session's trained champion, registered on this server we are about to kill.
    source = pull(reg.connect(champion), reg.ModelRef("pcb-detector", alias="champion"), tmp_path / "src")
    client = reg.connect(server.url)
    mlflow.set_experiment("kill-test")
    with mlflow.start_run():
        reg.register(client, reg.log_weights_model(source.weights), "pcb-detector", {}, "champion")

    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    cmd = [sys.executable, "-m", "edgeslim.cli", "compress", "--params", str(params_file), "-S", "mlflow.http_retries=1", *NO_PRUNE]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout_lines: list[str] = []
    reader = threading.Thread(target=lambda: stdout_lines.extend(proc.stdout), daemon=True)
    reader.start()
    stderr_lines = []
    killed = False
    for line in proc.stderr:
        stderr_lines.append(line)
        if not killed and KILL_AT in line:
            os.killpg(server.pid, signal.SIGKILL)
            killed = True
    proc.wait(timeout=300)
    result = subprocess.CompletedProcess(cmd, proc.returncode, "".join(stdout_lines), "".join(stderr_lines))
    assert killed, "the run never reached publishing: " + result.stderr[-3000:]
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"tracking server {server.url} failed while recording/publishing" in error_line(result)

    restarted = start_server(root, "127.0.0.1", port, timeout_s=120, detach=True)
    try:
        client = MlflowClient(restarted.url, restarted.url)
        _assert_alias_on_complete_version(client)

        # The next identical run breaks the crashed run's stale lock and leaves a published candidate.
        again = run_cli(
            "compress",
            "--params",
            str(params_file),
            "-S",
            "mlflow.lock_ttl_s=1",
            *NO_PRUNE,
            env_extra={"MLFLOW_TRACKING_URI": restarted.url},
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert _assert_alias_on_complete_version(client) is not None
        versions = client.search_model_versions(f"name = '{EDGE}'")
        assert len(versions) == 1, "the interrupted publish must be finished or redone, never duplicated"
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)

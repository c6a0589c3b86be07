"""The local `mlflow server` runs without MLflow's job runner, and webhooks are still delivered.

Nothing mocked: a real `mlflow server` started the way the product starts it. (That a failing command
ends on its own `edgeslim: error:` line, after Prefect's ephemeral server has shut down, is checked
by every error test: conftest.error_line.)
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from edgeslim.registry.server import start_server

# What MLflow's job execution starts (mlflow.server.jobs.utils): `python -m mlflow.server.jobs._job_runner`
# (or `._executor_runner`), which starts `python -m huey.bin.huey_consumer mlflow.server.jobs....`.
JOB_PROCESS_MARKERS = ("mlflow.server.jobs", "huey_consumer", "huey.bin")


def _process_group(pgid: int) -> dict[int, str]:
    """pid -> command line of every live process in process group ``pgid`` (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces or parens, so split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and cmdline:
            out[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


class _Receiver(BaseHTTPRequestHandler):
    deliveries: queue.Queue = queue.Queue()

    def do_POST(self) -> None:
        self.deliveries.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _assert_webhook_delivered(url: str) -> None:
    """MLflow delivers registry webhooks from the server process itself (not its job runner)."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        client = MlflowClient(url, url)
        hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        client.create_webhook(name="no-jobs", url=hook, events=["registered_model.created"], secret="s3cret")
        client.create_registered_model("no-jobs-model")
        payload = _Receiver.deliveries.get(timeout=30)
        assert payload["entity"] == "registered_model" and payload["data"]["name"] == "no-jobs-model", payload
    finally:
        receiver.shutdown()


def test_server_runs_without_job_runner_and_delivers_webhooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)  # the product default, not an opt-in
    server = start_server(tmp_path / "mlflow", "127.0.0.1", 0, timeout_s=120, detach=True)
    try:
        assert requests.get(f"{server.url}/health", timeout=10).ok
        # MLflow launches its job runner right after spawning uvicorn, so it would exist by the time
        # /health answers; its Huey consumers follow within seconds.
        procs = _process_group(server.pid)
        assert server.pid in procs and any("uvicorn" in cmd for cmd in procs.values()), procs
        jobs = [cmd for cmd in procs.values() if any(marker in cmd for marker in JOB_PROCESS_MARKERS)]
        assert not jobs, f"MLflow job-runner processes under the server: {jobs}"
        _assert_webhook_delivered(server.url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)

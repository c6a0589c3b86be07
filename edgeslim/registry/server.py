"""Start (or find) a real local ``mlflow server``: sqlite backend, proxied local artifacts.

Why a real server and not a file store: the registry's aliases, webhooks and concurrent writers
behave as in production only through the server. The demo leaves its server running (pid and log
in the workspace) so the user can open the UI afterwards; tests start one per session on a free
port and stop it in teardown.

MLflow's job execution is switched off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, MLflow's own
switch, read in ``mlflow.server._run_server``; there is no CLI flag for it). It backs only the GenAI
endpoints (genai evaluate, issue detection, online scorers, prompt optimization) that edgeslim never
calls, yet costs a ``mlflow.server.jobs._job_runner`` plus one ``huey_consumer`` per job kind and a
periodic-tasks consumer, each a full Python process with MLflow imported, and leaves a Huey store
directory in /dev/shm per start. Registry webhooks are unaffected: MLflow delivers them from a thread
pool inside the uvicorn worker (``mlflow.webhooks.delivery``), not through jobs. Kept as they are:
the ``mlflow server`` supervisor (it is how the supported CLI runs uvicorn), one uvicorn worker
(``--workers 1``: one process, and one webhook cache so a new webhook is seen by the next event),
and the gateway/assistant routes, which live in the uvicorn worker and add no process.

Measured 2026-12-01 (MLflow 3.17.2, Linux, 2 CPU cores; idle 40 s after /health; summed over the
server's process group): with job execution 10 processes (supervisor, uvicorn, job runner, 6 Huey
consumers, periodic-tasks consumer), RSS 2846 MB (PSS 1980 MB); without it 2 processes
(``mlflow server`` + uvicorn), RSS 588 MB (PSS 487 MB).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from edgeslim.errors import RegistryError

HEALTH_POLL_S = 0.5

# MLflow's job runner and Huey consumers serve only GenAI endpoints edgeslim does not use (see above).
# An explicit MLFLOW_SERVER_ENABLE_JOB_EXECUTION in the environment still wins.
SERVER_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass(frozen=True)
class LocalServer:
    url: str
    pid: int
    log: Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(f"{url.rstrip('/')}/health", timeout=timeout).ok
    except requests.RequestException:
        return False


def start_server(
    root: Path, host: str, port: int, timeout_s: float, detach: bool = False, artifacts_destination: str | None = None
) -> LocalServer:
    """Start ``mlflow server`` with its store under ``root``; wait until /health answers.

    Artifacts go to ``artifacts_destination`` (e.g. ``s3://bucket/prefix``, any S3 endpoint via
    MLFLOW_S3_ENDPOINT_URL and AWS_* in the environment) or to ``root/artifacts``; clients reach
    them through the server's proxy either way, so they need no S3 credentials themselves.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    log = root / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        artifacts_destination or str(root / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**SERVER_ENV_DEFAULTS, **os.environ}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=detach, cwd=root, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RegistryError(f"mlflow server exited with code {proc.returncode} at start; see {log}")
        if is_healthy(url):
            (root / "server.pid").write_text(f"{proc.pid}\n{url}\n")
            return LocalServer(url=url, pid=proc.pid, log=log)
        time.sleep(HEALTH_POLL_S)
    proc.terminate()
    raise RegistryError(f"mlflow server did not answer on {url} within {timeout_s:.0f}s; see {log}")


def running_server(root: Path) -> LocalServer | None:
    """The server a previous ``ensure_server`` left running for this workspace, if still healthy."""
    pid_file = Path(root) / "server.pid"
    if not pid_file.exists():
        return None
    pid_text, url = pid_file.read_text().split()[:2]
    return LocalServer(url=url, pid=int(pid_text), log=Path(root) / "server.log") if is_healthy(url) else None


def ensure_server(root: Path, host: str, port: int, timeout_s: float, artifacts_destination: str | None = None) -> LocalServer:
    """Reuse this workspace's running server or start a detached one that outlives the command."""
    existing = running_server(root)
    if existing:
        return existing
    if is_healthy(f"http://{host}:{port}"):
        raise RegistryError(
            f"port {port} on {host} already serves another MLflow; set MLFLOW_TRACKING_URI to use it or -S mlflow.port=<free port>"
        )
    return start_server(root, host, port, timeout_s, detach=True, artifacts_destination=artifacts_destination)


def stop_server(root: Path) -> bool:
    """Stop the workspace's detached server; True when one was running."""
    server = running_server(root)
    pid_file = Path(root) / "server.pid"
    if server is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.killpg(server.pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    return True

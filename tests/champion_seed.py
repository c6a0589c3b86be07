"""Train the session's champion once, for every pytest-xdist worker of a run.

Why: each worker has its own `mlflow server` (tests compare registry snapshots, so two workers must
not publish into one registry), and training the tiny baseline costs about five minutes of one core.
conftest starts this script in the background as soon as a collected test needs ``champion``; each
worker's ``champion`` fixture then waits for it and restarts its own server over a copy of the store
this script leaves behind. The champion is trained and registered by the real CLI, as before.

Usage: ``python tests/champion_seed.py SEED_DIR``. Leaves, in SEED_DIR: ``store/`` (the stopped
server's sqlite database and artifacts), ``params.yaml`` and ``workspace/`` (what it trained from),
``seed.log`` (the CLI's output), and last ``rc`` (the CLI's exit status).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, write_params

from edgeslim.registry.server import start_server

STOP_TIMEOUT_S = 60


def stop_process_group(pid: int) -> None:
    """SIGTERM the process group that ``pid`` (a child of this process) leads, and wait until all of it
    is gone, so that the sqlite store a server wrote is quiescent before anyone copies or reuses it."""
    os.killpg(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def main(seed: Path) -> int:
    params = write_params(seed / "params.yaml", seed / "workspace")
    env = {
        **os.environ,
        "YOLO_CONFIG_DIR": str(seed / "yolo-config"),
        "PREFECT_HOME": str(seed / "prefect"),  # an ephemeral Prefect server of its own
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("PREFECT_API_URL", None)
    server = start_server(seed / "store", "127.0.0.1", 0, timeout_s=120, detach=True)  # its own process group
    try:
        with (seed / "seed.log").open("w") as log:
            rc = subprocess.run(
                [sys.executable, "-m", "edgeslim.cli", "baseline", "--params", str(params)],
                cwd=REPO, env={**env, "MLFLOW_TRACKING_URI": server.url}, stdout=log, stderr=subprocess.STDOUT, check=False,
            ).returncode  # fmt: skip
    finally:
        stop_process_group(server.pid)
    (seed / "rc").write_text(f"{rc}\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

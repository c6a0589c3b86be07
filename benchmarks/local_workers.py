"""Prefect process workers on this machine, each as if on a machine of its own: a folder of its own as its
cwd and a checkout of the repo of its own (what a worker machine clones), so that nothing can lean on a
shared disk. The work pool test and ``benchmarks/many.py`` both start their workers with this.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.paths import REPO

START_S = 60


def checkout(dest: Path) -> Path:
    """A copy of the repo's files (tracked and untracked, not ignored): what a worker machine clones."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


class LocalWorker:
    """`prefect worker start --pool POOL` in ``home`` (its cwd, its log ``home/worker.log``), running flows
    from ``code`` (``code_dir_env``, which the deployments' pull step reads). ``env``: added to this
    process's environment; ``limit``: at most that many flow runs at once (``--limit``)."""

    def __init__(
        self, name: str, pool: str, home: Path, code: Path, code_dir_env: str, env: dict[str, str], limit: int | None = None
    ) -> None:
        self.name, self.home, self.code = name, home, code
        self.log = home / "worker.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", name, "--type", "process",
                 *(["--limit", str(limit)] if limit else [])],
                cwd=home, env={**os.environ, code_dir_env: str(code), **env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> None:
        """Until the worker says it polls its pool; fails with its log's tail if it exits or takes over ``START_S``."""
        deadline = time.monotonic() + START_S
        while "started!" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)

    def started(self, pid: int) -> bool:
        """Whether process ``pid`` descends from this worker (a flow run it started)."""
        while pid > 1:
            if pid == self.proc.pid:
                return True
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return False

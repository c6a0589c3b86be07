"""Local stand-ins for the fleet's infrastructure: a mosquitto broker and an S3 API (moto server).

Used by ``edgeslim demo`` and by the tests, so both run against the same real servers: each binds
127.0.0.1 on a free port, is started from a generated config, and is stopped by its owner.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeslim.errors import FleetError
from edgeslim.registry.server import free_port

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0  # both start in about a second; a minute means something is broken
POLL_S = 0.1
SBIN = "/usr/sbin"  # where Debian puts mosquitto, not always on a user's PATH
INSTALL_HINT = "install it with `apt-get install -y mosquitto` (Debian/Ubuntu) or `brew install mosquitto` (macOS)"


@dataclass
class LocalService:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _which_mosquitto() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=SBIN)


def ensure_mosquitto(log: Callable[[str], None] = print) -> str:
    """The mosquitto binary; installs the Debian package when missing (as root, or with passwordless sudo)."""
    found = _which_mosquitto()
    if found:
        return found
    # root installs directly; a CI user with passwordless sudo through `sudo -n`; anyone else gets the hint.
    as_root = [] if os.geteuid() == 0 else ["sudo", "-n"] if shutil.which("sudo") else None
    if as_root is None or not shutil.which("apt-get"):
        raise FleetError(f"the MQTT broker mosquitto is not installed: {INSTALL_HINT}")
    log("installing the mosquitto broker (apt-get install -y mosquitto)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*as_root, "apt-get", "install", "-y", "--no-install-recommends", "mosquitto"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*as_root, "apt-get", "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise FleetError(f"installing mosquitto failed ({done.stderr.strip().splitlines()[-1:]}); {INSTALL_HINT}")
    found = _which_mosquitto()
    if not found:
        raise FleetError(f"mosquitto is still not on PATH after installing it; {INSTALL_HINT}")
    return found


def wait_for_port(service: LocalService) -> LocalService:
    """Return ``service`` once its port accepts connections; a process that died or never listens is an error."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise FleetError(f"{service.name} exited with code {service.proc.returncode} at start; see {service.log}")
        try:
            socket.create_connection((HOST, service.port), timeout=POLL_S).close()
            return service
        except OSError:
            time.sleep(POLL_S)
    service.stop()
    raise FleetError(f"{service.name} did not listen on {HOST}:{service.port} within {START_TIMEOUT_S:g}s; see {service.log}")


def start_broker(folder: Path, log: Callable[[str], None] = print) -> LocalService:
    """mosquitto on 127.0.0.1:<free port>, anonymous, in memory (config written to ``folder``)."""
    binary = ensure_mosquitto(log)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(HOST)
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\nlog_dest stdout\n")
    out = folder / "mosquitto.log"
    with out.open("ab") as sink:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return wait_for_port(LocalService("mosquitto", port, proc, out))


def start_s3(folder: Path) -> LocalService:
    """A moto S3 server on 127.0.0.1:<free port> (state in memory, gone when it stops)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(HOST)
    out = folder / "moto.log"
    with out.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return wait_for_port(LocalService("moto S3 server", port, proc, out))


def loopback_overrides(broker: LocalService, s3: LocalService, signing_key: Path) -> list[str]:
    """The params overrides that point paging at a local broker and S3 server, signing with ``signing_key``."""
    return [
        "fleet.enabled=true",
        f"fleet.mqtt.host={HOST}",
        f"fleet.mqtt.port={broker.port}",
        f"fleet.s3.endpoint_url={s3.url}",
        "fleet.s3.create_bucket=true",
        f"fleet.signing_key={signing_key}",
    ]

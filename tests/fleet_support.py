"""Fixtures and helpers for the fleet tests: real mosquitto, real moto S3 server, real agent processes.

Nothing is mocked: the broker is Debian's mosquitto (installed by ``ensure_mosquitto`` when missing,
as root), S3 is a moto server process, agents are ``edgeslim agent`` subprocesses, and models are
tiny ONNX graphs built here (a 3x3 conv, optionally with ballast bytes or a NaN-producing tail).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.tiny_onnx import IMG, tiny_ir, tiny_onnx  # noqa: F401 (the fleet tests import them from here)
from edgeslim.agent import ir_archive
from edgeslim.config import Params, load_params
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet import onnx_info
from edgeslim.fleet.channels import mqtt as mqtt_channel
from edgeslim.fleet.demo import agent_command
from edgeslim.fleet.local import LocalService, loopback_overrides, start_broker, start_s3
from edgeslim.fleet.manifest import Artifact, Manifest, utc_iso
from edgeslim.fleet.signing import PRIVATE_KEY_FILE, generate_keypair, load_private_key, sign
from edgeslim.fleet.store import FleetStore
from edgeslim.fleet.topics import status_wildcard
from edgeslim.runtime.session import open_session

REPO = Path(__file__).resolve().parents[1]
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# Agents in tests retry fast: a fault should end in a status within a second or two.
AGENT_KNOBS = ["fleet.agent.download_retries=2", "fleet.agent.retry_backoff_s=0.1", "fleet.agent.http_timeout_s=5"]
WAIT_S = 30


# -- servers and keys -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    service = start_broker(tmp_path_factory.mktemp("broker"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    for key, value in S3_ENV.items():
        os.environ.setdefault(key, value)
    service = start_s3(tmp_path_factory.mktemp("moto"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway keypair: ``<dir>/edgeslim-signing.key`` and ``<dir>/<key id>.pub``."""
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder)
    return folder


def fleet_params(broker: LocalService, s3: LocalService, keys: Path, group: str, *extra: str) -> tuple[Params, list[str]]:
    """Repo params with the fleet pointed at the test servers; also the overrides, for subprocesses."""
    overrides = [
        *loopback_overrides(broker, s3, keys / PRIVATE_KEY_FILE),
        f"fleet.group={group}",
        "fleet.notify_retries=2",
        "fleet.notify_backoff_s=0.1",
        "fleet.mqtt.timeout_s=2",
        *AGENT_KNOBS,
        *extra,
    ]
    return load_params(REPO / "params.yaml", overrides), overrides


# -- models -----------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    """A file's sha256; an IR folder's is that of its deterministic tar (what the manifest names)."""
    return ir_archive.content_sha256(path)


def assert_serving(state_dir: Path, expected_sha: str) -> None:
    """``current`` is the expected model, complete, and it runs with finite outputs."""
    current = state_dir / "current"
    assert sha256(current.resolve()) == expected_sha, f"current model is not the expected one: {os.readlink(current)}"
    session = open_session(current.resolve())
    out = session.run(None, {"images": np.ones((1, 3, IMG, IMG), np.float32)})[0]
    assert np.isfinite(out).all()


# -- publishing without MLflow (the fault tests craft their own manifests) ---------------------
class Publisher:
    """Uploads a model, signs a manifest for it, and sends it on the group's MQTT topic."""

    def __init__(self, p: Params, model: str = "tiny-edge") -> None:
        self.p, self.model = p, model
        self.store = FleetStore(p.fleet.s3)
        self.store.ensure_bucket()
        self.key = load_private_key(p.fleet.signing_key)

    def manifest(self, path: Path, sequence: int, version: str, ttl_s: float = 3600, issued_ago_s: float = 0) -> tuple[Manifest, bytes]:
        files: dict[str, str] = {}
        if path.is_dir():  # an OpenVINO IR: its tar on the wire, each file's sha256 in the manifest
            fmt, io, files = onnx_info.ir_format(path), onnx_info.ir_io(path), ir_archive.files_of(path)
            path = ir_archive.pack(path, path.with_name(path.name + ir_archive.SUFFIX))
        else:
            fmt, io = onnx_info.describe(path)
        stored = self.store.upload_artifact(path, self.model)
        issued = datetime.now(UTC) - timedelta(seconds=issued_ago_s)
        m = Manifest(
            model=self.model,
            version=version,
            group=self.p.fleet.group,
            sequence=sequence,
            issued_at=utc_iso(issued),
            expires_at=utc_iso(issued + timedelta(seconds=ttl_s)),
            key_id="",
            artifacts=(Artifact(name=path.name, format=fmt, uri=stored.url, size=stored.size, sha256=stored.sha256, io=io, files=files),),
        )
        return m, sign(m, self.key)

    def send(self, m: Manifest, envelope: bytes) -> None:
        mqtt_channel.send(self.p.fleet, m, envelope)

    def page(self, path: Path, sequence: int, version: str, **kw: float) -> tuple[Manifest, bytes]:
        m, envelope = self.manifest(path, sequence, version, **kw)
        self.send(m, envelope)
        return m, envelope

    def object_key(self, sha: str, suffix: str = ".onnx") -> str:
        return self.store.object_key(self.model, "artifacts", f"{sha}{suffix}")


# -- agents and their statuses ----------------------------------------------------------------
class StatusLog:
    """Every status message of a group, as it arrives on the broker (retained ones included)."""

    def __init__(self, p: Params) -> None:
        self.messages: list[dict] = []
        self._cond = threading.Condition()
        self.client = mq.make_client("test-status")
        self.client.on_message = self._on_message
        mq.connect(self.client, p.fleet.mqtt.host, p.fleet.mqtt.port, p.fleet.mqtt.keepalive_s, p.fleet.mqtt.timeout_s)
        self.client.subscribe(status_wildcard(p.fleet.mqtt.topic_prefix, p.fleet.group), qos=1)

    def _on_message(self, _c, _u, msg) -> None:
        with self._cond:
            self.messages.append({**json.loads(msg.payload), "_at": time.monotonic()})
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict], bool], timeout_s: float = WAIT_S, after: int = 0) -> dict:
        """The first message (from index ``after`` on) matching ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching status within {timeout_s}s; got {[(m['device'], m['state'], m['sequence'], m['reason']) for m in self.messages]}"
                    )
                self._cond.wait(left)

    def state(self, device: str, state: str, sequence: int | None = None, timeout_s: float = WAIT_S, after: int = 0) -> dict:
        return self.wait_for(
            lambda m: m["device"] == device and m["state"] == state and (sequence is None or m["sequence"] == sequence), timeout_s, after
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AgentProcess:
    """One ``edgeslim agent`` subprocess; its stdout (status lines) and stderr go to a log file."""

    def __init__(
        self, device: str, state_dir: Path, keys: Path, overrides: list[str], *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.device, self.state_dir = device, state_dir
        self.log = state_dir.parent / f"{device}.log"
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = agent_command(REPO / "params.yaml", overrides, device, state_dir, keys, *args)
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}
            )

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

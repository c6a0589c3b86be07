"""The promotion trigger end to end, nothing mocked: a user's `best.pt` registered by `edgeslim register` on
the session's real `mlflow server` (sqlite) with a registered webhook → the MLflow client sets `champion` → MLflow POSTs the signed delivery → `edgeslim
webhook serve` verifies it and starts the `compress` deployment on a real `prefect server` → the
`edgeslim serve` process runs the flow → `<model>-edge@candidate` is published. Then forged,
stale and duplicate deliveries against the live receiver."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from conftest import REPO, healthy, prefect_session
from mlflow import MlflowClient

from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import free_port
from edgeslim.registry.sources import pull
from edgeslim.triggers.signature import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

MODEL = "pcb-hook"  # a copy of the session champion, so this test's promotions touch no other test's model
SECRET = "e2e-webhook-secret"
START_S, PUBLISH_S = 180, 420


def _alias_event(alias: str) -> bytes:
    """The body MLflow posts when ``alias`` is set on version 1 of MODEL."""
    event = {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "x",
        "data": {"name": MODEL, "alias": alias, "version": "1"},
    }
    return json.dumps(event).encode()


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{log.read_text()[-3000:] if log else ''}")


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture()
def processes(tmp_path: Path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


def _flow_runs(api: str) -> list[dict]:
    r = prefect_session().post(f"{api}/flow_runs/filter", json={"flow_runs": {"tags": {"all_": ["edgeslim-trigger"]}}}, timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.mark.slow
def test_alias_set_in_mlflow_starts_the_compress_deployment_which_publishes(
    champion: str, params_file: Path, processes: Processes, tmp_path: Path
):
    client = MlflowClient(champion, champion)
    # A user's best.pt made a registered version by `edgeslim register` (no alias yet: the promotion comes below).
    best = pull(reg.connect(champion), reg.ModelRef("pcb-detector", "champion"), tmp_path / "user").weights
    registered = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "register", str(best), "--name", MODEL, "--params", str(params_file)],
        cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": champion}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert registered.returncode == 0 and f"registered {MODEL} version 1" in registered.stdout, registered.stderr[-2000:]
    assert client.get_registered_model(MODEL).aliases == {}
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    prefect_env = {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    server, server_log = processes.start(
        "prefect", ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services"], prefect_env
    )
    _wait(lambda: healthy(f"{api}/health"), START_S, "prefect server", server, server_log)

    knobs = ["--params", str(params_file), "-S", f"model_name={MODEL}", "-S", "prune.enabled=false"]
    env = {**prefect_env, "MLFLOW_TRACKING_URI": champion, "EDGESLIM_MLFLOW_WEBHOOK_SECRET": SECRET, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    serve, serve_log = processes.start("serve", ["-m", "edgeslim.cli", "serve", *knobs], env)
    dedup = tmp_path / "deliveries.sqlite"
    hook, hook_log = processes.start(
        "webhook",
        ["-m", "edgeslim.cli", "webhook", "serve", *knobs, "-S", "triggers.webhook.port=0", "-S", f"triggers.webhook.dedup_db={dedup}"],
        env,
    )
    url = _wait(
        lambda: next((line.split()[-1] for line in hook_log.read_text().splitlines() if line.startswith("listening on")), None),
        START_S,
        "receiver",
        hook,
        hook_log,
    )
    created = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", "webhook", "create", *knobs, "--url", url],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr[-2000:]
    _wait(lambda: healthy(f"{api}/deployments/name/edgeslim-compress/compress"), START_S, "compress deployment", serve, serve_log)

    try:
        t0 = time.monotonic()
        client.set_registered_model_alias(MODEL, "champion", "1")  # the promotion, as the MLflow UI does it
        edge = _wait(lambda: _candidate(client), PUBLISH_S, "published edge version", serve, serve_log)
        latency = time.monotonic() - t0
        print(f"alias set -> {MODEL}-edge v{edge.version} @candidate: {latency:.1f}s")
        assert edge.tags["edgeslim.source_model"] == MODEL and edge.tags["edgeslim.source_version"] == "1"

        runs = _flow_runs(api)
        assert len(runs) == 1 and runs[0]["parameters"]["model"] == f"{MODEL}:1"
        _wait(lambda: _flow_runs(api)[0]["state_type"] == "COMPLETED", 60, "flow run state", serve, serve_log)
        # The publish itself moves <model>-edge@candidate: MLflow delivers that too (wait for it), and it is ignored.
        outcomes = _wait(lambda: _edge_delivery_seen(dedup), 60, "the delivery of the publish's own alias", hook, hook_log)
        started = [(d, o) for d, o in outcomes if o.startswith("flow_run")]
        assert [o for _, o in started] == [f"flow_run {runs[0]['id']}"], outcomes
        others = [o for d, o in outcomes if (d, o) not in started]
        assert others and all(o.startswith(f"ignored: model {MODEL}-edge") for o in others), outcomes

        # Against the live receiver: a forged signature and a stale timestamp are refused; a duplicate
        # delivery is acknowledged without a second start.
        body = _alias_event("champion")
        assert _post(url, body, secret="forged").status_code == 401
        assert _post(url, body, ts=time.time() - 3600).status_code == 401
        ignored = _alias_event("staging")
        delivery = str(uuid.uuid4())
        first, again = _post(url, ignored, delivery_id=delivery), _post(url, ignored, delivery_id=delivery)
        assert (first.json()["status"], again.json()["status"]) == ("ignored", "duplicate")
        replay_id = started[0][0]  # MLflow's real delivery id, replayed with a fresh valid signature
        assert _post(url, body, delivery_id=replay_id).json()["status"] == "duplicate"
        assert len(_flow_runs(api)) == 1, "no rejected or duplicate delivery may start a run"
    finally:
        for wh in client.list_webhooks():
            client.delete_webhook(wh.webhook_id)


def _edge_delivery_seen(dedup: Path) -> list[tuple[str, str]] | None:
    """Every recorded delivery (id, outcome), once the one for ``<model>-edge`` is among them."""
    with sqlite3.connect(dedup) as db:
        outcomes = [(d, o or "") for d, o in db.execute("SELECT id, outcome FROM deliveries").fetchall()]
    return outcomes if any(o.startswith(f"ignored: model {MODEL}-edge") for _, o in outcomes) else None


def _candidate(client: MlflowClient):
    try:
        return client.get_model_version_by_alias(f"{MODEL}-edge", "candidate")
    except Exception:  # noqa: BLE001 (not there yet)
        return None


def _post(url: str, body: bytes, secret: str = SECRET, ts: float | None = None, delivery_id: str | None = None) -> requests.Response:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time() if ts is None else ts))
    headers = {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, delivery_id, stamp, body),
        "Content-Type": "application/json",
    }
    return requests.post(url, data=body, headers=headers, timeout=10)

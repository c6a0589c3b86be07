"""Unit tests of the promotion trigger: MLflow's signature scheme, timestamp window, delivery dedup,
event/model/alias filter, and the receiver's answers (deployment start stubbed; the real chain is
in test_triggers_e2e.py)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO
from mlflow.webhooks.delivery import _generate_hmac_signature

from edgeslim.config import load_params
from edgeslim.triggers.dedup import DeliveryStore
from edgeslim.triggers.receiver import Receiver
from edgeslim.triggers.signature import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from edgeslim.triggers.start import COMPRESS_FLOW, RETRAIN_FLOW, StartFailed

SECRET = "s3cr3t"


def payload(name: str = "pcb-detector", alias: str = "champion", version: str = "4", entity: str = "model_version_alias") -> bytes:
    return json.dumps(
        {
            "entity": entity,
            "action": "created",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"name": name, "alias": alias, "version": version},
        }
    ).encode()


def signed(body: bytes, ts: float | None = None, delivery_id: str | None = None, secret: str = SECRET) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time() if ts is None else ts))
    return {DELIVERY_ID_HEADER: delivery_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, delivery_id, stamp, body)}


class Starts:
    """Records deployment starts; optionally fails the first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, p, model_ref: str, key: str, reason: str) -> str:
        if self.fail:
            self.fail -= 1
            raise StartFailed("prefect api down")
        self.calls.append((model_ref, key))
        return f"run-{len(self.calls)}"


@pytest.fixture()
def receiver(tmp_path: Path):
    p = load_params(REPO / "params.yaml")
    starts = Starts()
    store = DeliveryStore(tmp_path / "d.sqlite", retention_s=2 * p.triggers.webhook.max_age_s)
    yield Receiver(p, SECRET, store, starts), starts, store
    store.close()


def test_signature_matches_the_pinned_mlflow_sender():
    body = payload().decode()
    assert sign(SECRET, "abc", "1700000000", body.encode()) == _generate_hmac_signature(SECRET, "abc", "1700000000", body)


def test_promotion_starts_compress_for_the_exact_version(receiver):
    rcv, starts, store = receiver
    headers = signed(payload(version="7"))
    answer = rcv.handle(headers, payload(version="7"))
    assert answer.status == 202 and answer.body["flow_run_id"] == "run-1"
    assert starts.calls == [("pcb-detector:7", headers[DELIVERY_ID_HEADER])]  # delivery id = idempotency key
    assert store.outcome(headers[DELIVERY_ID_HEADER]) == "flow_run run-1"


def test_forged_signature_is_rejected(receiver):
    rcv, starts, _ = receiver
    body = payload()
    assert rcv.handle(signed(body, secret="wrong"), body).status == 401
    headers = signed(payload(version="1"))
    assert rcv.handle(headers, payload(version="2")).status == 401, "a body swapped under a valid signature"
    assert rcv.handle({}, body).status == 400
    assert starts.calls == []


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_timestamp_outside_the_window_is_rejected(receiver, offset_s: int):
    rcv, starts, _ = receiver
    body = payload()
    answer = rcv.handle(signed(body, ts=time.time() + offset_s), body)
    assert answer.status == 401 and "window" in answer.body["reason"]
    assert starts.calls == []


def test_duplicate_delivery_starts_one_run(receiver):
    rcv, starts, _ = receiver
    body = payload()
    headers = signed(body)
    first, second = rcv.handle(headers, body), rcv.handle(headers, body)
    assert (first.status, second.status) == (202, 200)
    assert second.body["status"] == "duplicate" and second.body["outcome"] == "flow_run run-1"
    assert len(starts.calls) == 1


def test_failed_start_releases_the_delivery_for_mlflows_retry(receiver):
    rcv, starts, _ = receiver
    starts.fail = 1
    body = payload()
    headers = signed(body)
    assert rcv.handle(headers, body).status == 503
    assert rcv.handle(headers, body).status == 202
    assert len(starts.calls) == 1


@pytest.mark.parametrize("body", [payload(alias="staging"), payload(name="other-model"), payload(entity="model_version_tag")])
def test_other_aliases_models_and_events_are_ignored(receiver, body: bytes):
    rcv, starts, _ = receiver
    answer = rcv.handle(signed(body), body)
    assert answer.status == 200 and answer.body["status"] == "ignored"
    assert starts.calls == []


def test_dedup_store_survives_a_restart(tmp_path: Path):
    store = DeliveryStore(tmp_path / "d.sqlite", retention_s=600)
    assert store.claim("a", now=1000.0)
    store.close()
    store = DeliveryStore(tmp_path / "d.sqlite", retention_s=600)
    assert not store.claim("a", now=1001.0)
    assert store.claim("a", now=1000.0 + 601), "records past the retention are purged"
    store.close()


def test_flow_names_match_the_deployment_names_the_receiver_starts():
    from flows.compress import compress_flow
    from flows.retrain import retrain_flow

    assert (compress_flow.name, retrain_flow.name) == (COMPRESS_FLOW, RETRAIN_FLOW)


def test_retrain_schedule_and_deployments(tmp_path: Path):
    from flows.deployments import deployments

    p = load_params(REPO / "params.yaml", ["triggers.retrain.cron='*/5 * * * *'"])
    compress, retrain, many, step = deployments(p, "http://127.0.0.1:5000", REPO / "params.yaml", ["prune.enabled=false"])
    assert compress.name == p.triggers.compress_deployment and not compress.schedules
    assert retrain.schedules[0].schedule.cron == "*/5 * * * *"
    assert retrain.parameters["overrides"] == ["prune.enabled=false"] and compress.parameters["tracking_uri"] == "http://127.0.0.1:5000"
    assert many.name == p.prefect.compress_many_deployment and many.parameters["overrides"] == ["prune.enabled=false"]
    # the step flow gets only the defaults it takes (it is handed the parent run's params whole)
    assert step.name == p.prefect.gpu_pool and set(step.parameters) == {"tracking_uri", "params_file"}


@pytest.mark.parametrize(
    ("old", "new", "margin", "promote"),
    [(0.30, 0.31, 0.005, True), (0.30, 0.304, 0.005, False), (0.30, 0.30, 0.0, False), (0.30, 0.29, -0.02, True)],
)
def test_retrain_promotes_only_above_the_champion_plus_margin(old: float, new: float, margin: float, promote: bool):
    from tasks.retrain import Verdict

    assert Verdict(old, new, margin).promote is promote

"""A burst at the promotion receiver: 1,000 signed deliveries from several senders at once (200 distinct
promotions, 600 duplicates of them, 200 replays with stale timestamps) → exactly 200 runs of the
compress deployment on the session's real `prefect server`, one per promotion. No worker executes them:
the count is of the runs created, and they are deleted afterwards. The test prints the deliveries per
second the receiver held.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import REPO, prefect_session, run_cli

from edgeslim.triggers.signature import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

MODEL = "pcb-burst"
SECRET = "burst-secret"
PROMOTIONS, DUPLICATES, REPLAYS, SENDERS = 200, 600, 200, 8
START_S = 120
STALE_S = 3600  # far outside triggers.webhook.max_age_s


def _delivery(version: int, stamp: float) -> tuple[str, bytes, dict[str, str]]:
    """One signed delivery of `champion` set on ``version`` of MODEL, as MLflow sends it."""
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "x",
                       "data": {"name": MODEL, "alias": "champion", "version": str(version)}}).encode()  # fmt: skip
    delivery_id = str(uuid.uuid4())
    ts = str(int(stamp))
    return delivery_id, body, {DELIVERY_ID_HEADER: delivery_id, TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SECRET, delivery_id, ts, body)}


def _compress_runs(api: str) -> list[dict]:
    runs, offset = [], 0
    while True:
        page = (
            prefect_session()
            .post(
                f"{api}/flow_runs/filter",
                json={"flow_runs": {"tags": {"all_": ["edgeslim-trigger"]}, "name": {"like_": MODEL}}, "limit": 200, "offset": offset},
                timeout=30,
            )
            .json()
        )
        runs += page
        if len(page) < 200:
            return runs
        offset += 200


@pytest.mark.slow
def test_a_thousand_deliveries_start_exactly_one_run_per_promotion(mlflow_server, prefect_api, params_file, tmp_path):
    knobs = ["--params", str(params_file), "-S", f"triggers.webhook.models=[{MODEL}]"]
    deployed = run_cli("deploy", *knobs, env_extra={"MLFLOW_TRACKING_URI": mlflow_server})
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    log = tmp_path / "webhook.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "EDGESLIM_MLFLOW_WEBHOOK_SECRET": SECRET}
    args = [*knobs, "-S", "triggers.webhook.port=0", "-S", f"triggers.webhook.dedup_db={tmp_path / 'deliveries.sqlite'}"]
    with log.open("wb") as out:
        hook = subprocess.Popen([sys.executable, "-m", "edgeslim.cli", "webhook", "serve", *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + START_S
        while not (url := next((ln.split()[-1] for ln in log.read_text().splitlines() if ln.startswith("listening on")), None)):
            assert hook.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        now = time.time()
        fresh = [_delivery(v, now) for v in range(1, PROMOTIONS + 1)]
        burst = fresh + [random.Random(i).choice(fresh) for i in range(DUPLICATES)]  # MLflow's retries: same id, same signature
        burst += [_delivery(v, now - STALE_S) for v in random.Random(0).sample(range(1, PROMOTIONS + 1), REPLAYS)]
        random.Random(1).shuffle(burst)
        with ThreadPoolExecutor(SENDERS) as senders:
            start = time.perf_counter()
            answers = list(senders.map(lambda d: requests.post(url, data=d[1], headers=d[2], timeout=60), burst))
            seconds = time.perf_counter() - start
    finally:
        os.killpg(hook.pid, signal.SIGTERM)
        hook.wait(timeout=30)
    statuses = Counter(a.status_code for a in answers)
    print(f"{len(burst)} deliveries from {SENDERS} senders in {seconds:.1f} s: {len(burst) / seconds:.0f} deliveries/s; {dict(statuses)}")
    assert statuses == {202: PROMOTIONS, 200: DUPLICATES, 401: REPLAYS}, statuses
    assert {a.json()["status"] for a in answers if a.status_code == 200} == {"duplicate"}
    runs = _compress_runs(prefect_api)
    try:
        assert len(runs) == PROMOTIONS, "exactly one run per promotion"
        assert sorted(r["parameters"]["model"] for r in runs) == sorted(f"{MODEL}:{v}" for v in range(1, PROMOTIONS + 1))
        started = {a.json()["flow_run_id"] for a in answers if a.status_code == 202}
        assert started == {r["id"] for r in runs} and Path(tmp_path / "deliveries.sqlite").is_file()
    finally:  # nobody runs them here; left scheduled, the work pool test's workers on this server would pick them up
        api = prefect_session()
        for run in runs:
            api.delete(f"{prefect_api}/flow_runs/{run['id']}", timeout=30).raise_for_status()

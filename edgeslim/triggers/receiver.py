"""`edgeslim webhook serve`: a small HTTP server for MLflow registry webhooks.

Order per POST: verify signature and timestamp (401) → claim the delivery id (duplicate: 200,
nothing started) → filter event/model/alias (ignored: 200) → start the compress deployment (202
with the flow run id; a failed start releases the claim and answers 503 so MLflow retries).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.errors import EdgeslimError
from edgeslim.triggers import promotion
from edgeslim.triggers.dedup import DeliveryStore
from edgeslim.triggers.signature import DELIVERY_ID_HEADER, DeliveryRejected, verify
from edgeslim.triggers.start import StartFailed, start_compress

MAX_BODY_BYTES = 1 << 20  # MLflow's alias payloads are a few hundred bytes
Starter = Callable[[Params, str, str, str], str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


def secret(p: Params) -> str:
    value = os.environ.get(p.triggers.webhook.secret_env, "")
    if not value:
        raise EdgeslimError(f"${p.triggers.webhook.secret_env} is empty: the receiver needs the webhook's HMAC secret")
    return value


def dedup_path(p: Params) -> Path:
    return Path(p.triggers.webhook.dedup_db or workspace.root(p) / "triggers" / "deliveries.sqlite")


class Receiver:
    """The HTTP-independent core: one call per delivery, returns the answer."""

    def __init__(self, p: Params, key: str, store: DeliveryStore, start: Starter = start_compress) -> None:
        self.p, self._key, self._store, self._start = p, key, store, start
        # One start at a time: Prefect's sync run_deployment, called from several handler threads at
        # once, left some calls hanging for good (a burst of 200 concurrent promotions lost 3 of them).
        self._starting = threading.Lock()

    def handle(self, headers: dict[str, str], body: bytes, now: float | None = None) -> Answer:
        now = time.time() if now is None else now
        try:
            delivery = verify(headers, body, self._key, now, self.p.triggers.webhook.max_age_s)
        except DeliveryRejected as exc:
            return Answer(exc.status, {"status": "rejected", "reason": str(exc)})
        if not self._store.claim(delivery.delivery_id, now):
            return Answer(
                200, {"status": "duplicate", "delivery_id": delivery.delivery_id, "outcome": self._store.outcome(delivery.delivery_id)}
            )
        try:
            promo, why = promotion.parse(delivery.body, self.p)
        except DeliveryRejected as exc:
            self._store.record(delivery.delivery_id, f"rejected: {exc}")
            return Answer(exc.status, {"status": "rejected", "reason": str(exc)})
        if promo is None:
            self._store.record(delivery.delivery_id, f"ignored: {why}")
            return Answer(200, {"status": "ignored", "reason": why})
        try:
            with self._starting:
                run_id = self._start(self.p, promo.ref, delivery.delivery_id, why)
        except StartFailed as exc:
            self._store.release(delivery.delivery_id)
            return Answer(503, {"status": "error", "reason": str(exc)})
        self._store.record(delivery.delivery_id, f"flow_run {run_id}")
        return Answer(202, {"status": "started", "flow_run_id": run_id, "model": promo.ref, "delivery_id": delivery.delivery_id})


def _handler(receiver: Receiver, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?")[0] != path:
                return self._answer(Answer(404, {"status": "not found"}))
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._answer(Answer(413, {"status": "rejected", "reason": "body too large"}))
            answer = receiver.handle(dict(self.headers.items()), self.rfile.read(length))
            print(
                f"webhook {self.headers.get(DELIVERY_ID_HEADER, '-')}: {answer.status} {json.dumps(answer.body)}",
                file=sys.stderr,
                flush=True,
            )
            self._answer(answer)

        def do_GET(self) -> None:
            self._answer(Answer(200, {"status": "ok"}) if self.path == "/health" else Answer(404, {"status": "not found"}))

        def _answer(self, answer: Answer) -> None:
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # noqa: ARG002 (one line per delivery above instead)
            return

    return Handler


def serve(p: Params, ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; ``ready`` gets the bound URL (port 0 picks a free one)."""
    wh = p.triggers.webhook
    store = DeliveryStore(dedup_path(p), retention_s=2 * wh.max_age_s)
    receiver = Receiver(p, secret(p), store)
    server = ThreadingHTTPServer((wh.host, wh.port), _handler(receiver, wh.path))
    url = f"http://{wh.host}:{server.server_address[1]}{wh.path}"
    (ready or (lambda u: print(f"listening on {u}", flush=True)))(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        store.close()

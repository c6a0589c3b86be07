"""Where manifests come from: an MQTT subscription, an HTTP URL polled, or webhook POSTs.

Each source only drops raw envelopes into the agent's inbox; the updater (one thread) decides
what to do with them, so two deliveries can never race on the model store.
"""

from __future__ import annotations

import hmac
import os
import queue
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from edgeslim.agent.config import AgentConfig
from edgeslim.errors import FleetError
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet.topics import device_manifest_topic, manifest_topic, status_topic
from edgeslim.fleet.webhook_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, body_signature

ANNOUNCE = b""  # inbox marker: (re)connected, tell the broker where this device stands
MAX_ENVELOPE_BYTES = 1 << 20  # a signed manifest is a few KiB; refuse anything that could not be one


class MqttLink:
    """Subscribes to the group's and its own manifest topic (QoS 1); publishes retained statuses with a last will.

    The group topic reaches every device at once; the device topic is where a staged rollout (and its
    rollback) addresses this device alone."""

    def __init__(self, cfg: AgentConfig, inbox: queue.Queue, offline: bytes) -> None:
        assert cfg.broker is not None
        self.cfg, self.inbox = cfg, inbox
        self.topic = status_topic(cfg.mqtt.topic_prefix, cfg.group, cfg.device)
        self.client = mq.make_client(f"edgeslim-agent-{cfg.device}")
        self.client.will_set(self.topic, offline, qos=cfg.mqtt.qos, retain=True)
        self.client.reconnect_delay_set(max_delay=cfg.mqtt.keepalive_s)  # back within one keepalive after an outage
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        # connect_async + loop_start: the broker may be down now; paho keeps reconnecting.
        self.client.connect_async(cfg.broker.host, cfg.broker.port, cfg.mqtt.keepalive_s)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:  # noqa: ANN001 (paho callback)
        if msg.payload:  # empty: the publisher cleared a retained manifest, nothing to offer
            self.inbox.put(msg.payload)

    def _on_connect(self, client, _u, _flags, reason, _props) -> None:  # noqa: ANN001 (paho callback)
        if not reason.is_failure:
            prefix, qos = self.cfg.mqtt.topic_prefix, self.cfg.mqtt.qos
            client.subscribe(
                [(manifest_topic(prefix, self.cfg.group), qos), (device_manifest_topic(prefix, self.cfg.group, self.cfg.device), qos)]
            )
            self.inbox.put(ANNOUNCE)

    def publish_status(self, message: bytes) -> None:
        self.client.publish(self.topic, message, qos=self.cfg.mqtt.qos, retain=True)

    def close(self, offline: bytes) -> None:
        """A clean stop sends no last will, so say ``offline`` explicitly."""
        try:
            mq.publish(self.client, self.topic, offline, self.cfg.mqtt.qos, True, self.cfg.mqtt.timeout_s)
        except OSError:
            pass  # broker gone: its last will covers us
        self.client.disconnect()
        self.client.loop_stop()


def fetch(url: str, timeout_s: float, etag: str | None = None) -> tuple[bytes | None, str | None]:
    """GET ``url``: ``(envelope, etag)``, or ``(None, etag)`` when unchanged since ``etag``."""
    response = requests.get(url, headers={"If-None-Match": etag} if etag else {}, timeout=timeout_s)
    if response.status_code == HTTPStatus.NOT_MODIFIED:
        return None, etag
    response.raise_for_status()
    return response.content[:MAX_ENVELOPE_BYTES], response.headers.get("ETag")


def poll(cfg: AgentConfig, inbox: queue.Queue, stop: threading.Event, log: Callable[[str], None]) -> threading.Thread:
    """A thread that reads ``cfg.poll_url`` every ``poll_s`` and queues new envelopes."""
    assert cfg.poll_url is not None
    url = cfg.poll_url

    def loop() -> None:
        etag = None
        while not stop.is_set():
            try:
                body, etag = fetch(url, cfg.knobs.http_timeout_s, etag)
                if body:
                    inbox.put(body)
            except requests.RequestException as exc:
                log(f"poll failed: {exc}")
            stop.wait(cfg.knobs.poll_s)

    thread = threading.Thread(target=loop, name="poll", daemon=True)
    thread.start()
    return thread


def serve_webhooks(cfg: AgentConfig, inbox: queue.Queue, log: Callable[[str], None]) -> ThreadingHTTPServer:
    """Accept HMAC-signed manifest POSTs on ``cfg.listen`` (the webhook channel's device end)."""
    assert cfg.listen is not None
    secret = os.environ.get(cfg.webhook_secret_env, "").encode()
    if not secret:
        raise FleetError(f"--listen needs the webhook secret in ${cfg.webhook_secret_env}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_ENVELOPE_BYTES:
                self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "manifest envelope too large")
                return
            body = self.rfile.read(length)
            expected = body_signature(secret, self.headers.get(TIMESTAMP_HEADER, ""), body)
            if not hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, "")):
                self.send_error(HTTPStatus.UNAUTHORIZED, "bad webhook signature")
                return
            inbox.put(body)
            self.send_response(HTTPStatus.ACCEPTED)
            self.end_headers()

        def log_message(self, fmt: str, *args: object) -> None:
            log(f"webhook: {fmt % args}")

    server = ThreadingHTTPServer((cfg.listen.host, cfg.listen.port), Handler)
    threading.Thread(target=server.serve_forever, name="webhooks", daemon=True).start()
    log(f"listening for webhooks on http://{cfg.listen.host}:{server.server_address[1]}")
    return server

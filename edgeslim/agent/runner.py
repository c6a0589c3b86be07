"""The agent's main loop: wire sources, store and updater together; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import queue
import signal
import sys
import threading

import requests

from edgeslim.agent.config import AgentConfig
from edgeslim.agent.sources import ANNOUNCE, MqttLink, fetch, poll, serve_webhooks
from edgeslim.agent.state import ModelStore
from edgeslim.agent.status import ACTIVE, OFFLINE, StatusReporter, status_message
from edgeslim.agent.updater import UNCHANGED, Updater
from edgeslim.errors import FleetError
from edgeslim.fleet.signing import load_public_keys

STOP_CHECK_S = 0.5  # how often the idle loop looks at the stop flag (signals cannot wake a queue)


def _log(device: str):  # noqa: ANN202
    def log(message: str) -> None:
        print(f"[agent {device}] {message}", file=sys.stderr, flush=True)

    return log


def run(cfg: AgentConfig) -> int:
    """Run until stopped (or, with ``once``, for one poll); 0 = serving a healthy model or unchanged."""
    log = _log(cfg.device)
    trusted = load_public_keys(cfg.trusted_keys)
    store = ModelStore(cfg.state_dir)
    if store.recover():
        log("a swap was cut short before its health check: back on the active model")
    inbox: queue.Queue[bytes] = queue.Queue()
    active = store.active.brief() if store.active else None
    offline = status_message(cfg.device, cfg.group, OFFLINE, None, None, active)
    link = MqttLink(cfg, inbox, offline) if cfg.broker else None
    updater = Updater(cfg, store, trusted, StatusReporter(cfg.device, cfg.group, link.publish_status if link else None), log)

    if cfg.once:
        if not cfg.poll_url:
            raise FleetError("--once needs --poll-url")
        try:
            body, _ = fetch(cfg.poll_url, cfg.knobs.http_timeout_s)
        except requests.RequestException as exc:
            raise FleetError(f"cannot read the manifest at --poll-url: {exc}") from None
        state = updater.offer(body or b"")
        if link:
            link.close(status_message(cfg.device, cfg.group, OFFLINE, None, None, store.active.brief() if store.active else None))
        return 0 if state in (ACTIVE, UNCHANGED) else 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve_webhooks(cfg, inbox, log) if cfg.listen else None
    if cfg.poll_url:
        poll(cfg, inbox, stop, log)
    if not link:
        updater.announce()
    log(
        f"running: group {cfg.group}, state {cfg.state_dir}, sources: "
        + ", ".join(s for s, on in (("mqtt", link), ("poll", cfg.poll_url), ("webhook", server)) if on)
    )
    try:
        while not stop.is_set():
            try:
                item = inbox.get(timeout=STOP_CHECK_S)
            except queue.Empty:
                continue
            if item == ANNOUNCE:
                updater.announce()
            else:
                updater.offer(item)
    finally:
        if server:
            server.shutdown()
        if link:
            link.close(status_message(cfg.device, cfg.group, OFFLINE, None, None, store.active.brief() if store.active else None))
        log("stopped")
    return 0

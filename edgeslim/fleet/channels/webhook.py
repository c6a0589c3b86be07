"""HTTP webhook channel: POST the signed manifest to device or gateway endpoints, HMAC-signed."""

from __future__ import annotations

import os
import time

import requests

from edgeslim.config import FleetParams
from edgeslim.errors import ChannelError
from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.webhook_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, body_signature


def send(params: FleetParams, manifest: Manifest, envelope: bytes) -> None:  # noqa: ARG001 (the channel interface)
    cfg = params.webhook
    secret = os.environ.get(cfg.secret_env)
    if not secret:
        raise ChannelError(f"webhook secret ${cfg.secret_env} is not set")
    for url in cfg.urls:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: body_signature(secret.encode(), timestamp, envelope),
        }
        response = requests.post(url, data=envelope, headers=headers, timeout=cfg.timeout_s)
        if not response.ok:
            raise OSError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")

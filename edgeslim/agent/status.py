"""Status messages: one JSON object per state change, on stdout and (when connected) on MQTT.

Each message carries the manifest it is about (sequence, version) and what the device runs right
now (``active``), so the rollout tracker can tell "failed, still on the old model" from "active".
States: online, downloading, verified, active, rolled-back, failed, offline (MQTT last will).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from edgeslim.fleet.manifest import utc_iso

DOWNLOADING, VERIFIED, ACTIVE, ROLLED_BACK, FAILED = "downloading", "verified", "active", "rolled-back", "failed"
ONLINE, OFFLINE = "online", "offline"


def status_message(
    device: str,
    group: str,
    state: str,
    sequence: int | None,
    version: str | None,
    active: dict | None,
    reason: str | None = None,
    **extra: object,
) -> bytes:
    body = {
        "device": device,
        "group": group,
        "state": state,
        "sequence": sequence,
        "version": version,
        "reason": reason,
        "active": active,
        "time": utc_iso(datetime.now(UTC)),
        **extra,
    }
    return json.dumps(body).encode()


class StatusReporter:
    """Prints every status line and hands it to ``publish`` (MQTT) when the agent has a broker."""

    def __init__(self, device: str, group: str, publish: Callable[[bytes], None] | None = None, echo: bool = True) -> None:
        self.device, self.group, self.publish, self.echo = device, group, publish, echo  # echo: False in the fleet simulator

    def __call__(
        self, state: str, sequence: int | None, version: str | None, active: dict | None, reason: str | None = None, **extra: object
    ) -> None:
        message = status_message(self.device, self.group, state, sequence, version, active, reason, **extra)
        if self.echo:
            print(message.decode(), flush=True)
        if self.publish:
            self.publish(message)

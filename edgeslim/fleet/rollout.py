"""Rollout tracking: which devices of a group took a manifest, which failed, which stayed silent.

The roster is learned, not configured: every agent keeps a retained status message on
``<prefix>/<group>/status/<device>``, so subscribing returns the last word of every device that
ever joined (its last-will ``offline`` included), plus any device params name explicitly. The
watch subscribes before the manifest goes out, so no acknowledgement can be missed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from edgeslim.config import FleetMqttParams
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet.topics import status_wildcard

UPDATED = "active"
FAILED = ("rolled-back", "failed")
OFFLINE = "offline"


@dataclass
class RolloutResult:
    sequence: int
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # device → its reason
    silent: list[str] = field(default_factory=list)
    waited_s: float = 0.0

    def summary(self) -> str:
        return f"{len(self.updated)} updated, {len(self.failed)} failed, {len(self.silent)} silent"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Tally:
    """Where each of a set of devices stands on one sequence."""

    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    @property
    def reported(self) -> int:
        return len(self.updated) + len(self.failed)


def tally(statuses: dict[str, dict], devices: tuple[str, ...] | list[str], sequence: int) -> Tally:
    out = Tally()
    for device in devices:
        status = statuses.get(device, {})
        if status.get("sequence") == sequence and status.get("state") == UPDATED:
            out.updated.append(device)
        elif status.get("sequence") == sequence and status.get("state") in FAILED:
            out.failed[device] = f"{status['state']}: {status.get('reason') or 'no reason given'}"
        else:
            out.pending.append(device)
    return out


class StatusWatch:
    """Collect the group's device statuses from subscription time on (retained ones first)."""

    def __init__(self, cfg: FleetMqttParams, group: str) -> None:
        self.cfg, self.group = cfg, group
        self.statuses: dict[str, dict] = {}
        self.history: list[tuple[float, dict]] = []  # (monotonic arrival time, status), for timings and plots
        self.changes = 0  # bumped on every status, so a waiter cannot miss one between two looks
        self._changed = threading.Condition()
        self._client = mq.make_client("edgeslim-rollout")
        self._sync_topic = f"{cfg.topic_prefix}/_sync/{uuid.uuid4().hex}"  # "_" cannot start a group name
        self._synced = threading.Event()

    def _on_message(self, _c, _u, msg) -> None:  # noqa: ANN001 (paho callback)
        if msg.topic == self._sync_topic:
            self._synced.set()
            return
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return  # not an agent's status: ignore rather than stall the rollout
        if isinstance(status, dict) and isinstance(status.get("device"), str):
            with self._changed:
                self.statuses[status["device"]] = status
                self.history.append((time.monotonic(), status))
                self.changes += 1
                self._changed.notify_all()

    def wait_change(self, seen: int, timeout_s: float) -> int:
        """Block until a status newer than change ``seen`` arrived, or ``timeout_s``; the change count now."""
        with self._changed:
            if self.changes == seen and timeout_s > 0:
                self._changed.wait(timeout_s)
            return self.changes

    def snapshot(self) -> dict[str, dict]:
        with self._changed:
            return dict(self.statuses)

    def __enter__(self) -> "StatusWatch":
        self._client.on_message = self._on_message
        mq.connect(self._client, self.cfg.host, self.cfg.port, self.cfg.keepalive_s, self.cfg.timeout_s)
        self._client.subscribe([(status_wildcard(self.cfg.topic_prefix, self.group), 1), (self._sync_topic, 1)])
        # The broker sends retained statuses right after the subscription; a message of our own that
        # comes back behind them marks the end of that backlog, so the roster is complete.
        mq.publish(self._client, self._sync_topic, b"sync", 1, False, self.cfg.timeout_s)
        if not self._synced.wait(self.cfg.timeout_s):
            self.__exit__(None, None, None)
            raise mq.ConnectFailed(f"broker {self.cfg.host}:{self.cfg.port} did not deliver the status backlog in time")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _settled(self, sequence: int, device: str) -> bool:
        status = self.statuses.get(device, {})
        state = status.get("state")
        return state == OFFLINE or (status.get("sequence") == sequence and (state == UPDATED or state in FAILED))

    def wait(self, sequence: int, timeout_s: float, expected: list[str]) -> RolloutResult:
        """Block until every known device settled on ``sequence`` (or went offline), or timeout."""
        start = time.monotonic()
        with self._changed:
            while True:
                roster = set(self.statuses) | set(expected)
                left = timeout_s - (time.monotonic() - start)
                if all(self._settled(sequence, d) for d in roster) or left <= 0:
                    break
                self._changed.wait(left)
            count = tally(self.statuses, sorted(roster), sequence)
        return RolloutResult(sequence, count.updated, count.failed, count.pending, round(time.monotonic() - start, 3))

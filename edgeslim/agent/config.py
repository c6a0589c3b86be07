"""Everything one agent process needs to know, gathered from params and the command line once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.config import FleetAgentParams, FleetMqttParams


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host, int(port))


@dataclass(frozen=True)
class AgentConfig:
    device: str
    group: str
    state_dir: Path
    trusted_keys: Path
    knobs: FleetAgentParams
    mqtt: FleetMqttParams
    broker: Endpoint | None  # None: no MQTT (poll or webhook only; statuses go to stdout)
    poll_url: str | None
    listen: Endpoint | None  # serve webhook POSTs here
    webhook_secret_env: str
    once: bool  # with poll_url: check once, apply, exit (cron-driven devices)

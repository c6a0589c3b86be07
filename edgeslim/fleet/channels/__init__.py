"""Notification channels: each tells devices that a new signed manifest exists.

Every enabled channel is tried (with retries and backoff) even when another one failed, and the
outcome of each is returned by name: a channel that fails is reported, never hidden behind one that
worked.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from edgeslim.config import FleetParams
from edgeslim.errors import ChannelError
from edgeslim.fleet.channels import iot_jobs, mqtt, webhook
from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.retry import with_retries

OK = "ok"
SENDERS: dict[str, Callable[[FleetParams, Manifest, bytes], None]] = {"mqtt": mqtt.send, "webhook": webhook.send, "iot_jobs": iot_jobs.send}
TRANSIENT = (OSError, BotoCoreError, ClientError)  # requests' errors are OSErrors too


def notify_all(params: FleetParams, manifest: Manifest, envelope: bytes, log: Callable[[str], None] = print) -> dict[str, str]:
    """``{channel: "ok" | "failed after N tries: <last error>"}`` for every channel in params."""
    outcome: dict[str, str] = {}
    for channel in params.channels:

        def attempt(channel: str = channel) -> None:
            SENDERS[channel](params, manifest, envelope)

        try:
            with_retries(attempt, params.notify_retries, params.notify_backoff_s, TRANSIENT, lambda m, c=channel: log(f"{c}: {m}"))  # type: ignore[misc]  # default-bound loop variable
            outcome[channel] = OK
            log(f"{channel}: notified")
        except ChannelError as exc:  # misconfiguration: retrying cannot help
            outcome[channel] = f"failed: {exc}"
        except TRANSIENT as exc:
            outcome[channel] = f"failed after {params.notify_retries} tries: {exc}"
        if outcome[channel] != OK:
            log(f"{channel}: {outcome[channel]}")
    return outcome

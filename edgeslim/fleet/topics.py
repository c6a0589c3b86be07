"""MQTT topic names shared by the publisher, the rollout tracker and the edge agent."""

from __future__ import annotations


def manifest_topic(prefix: str, group: str) -> str:
    """Retained: the group's current signed manifest, so a device that joins late still gets it."""
    return f"{prefix}/{group}/manifest"


def status_topic(prefix: str, group: str, device: str) -> str:
    """Retained per device: its last state, so the tracker learns the group's roster on subscribe."""
    return f"{prefix}/{group}/status/{device}"


def status_wildcard(prefix: str, group: str) -> str:
    return f"{prefix}/{group}/status/+"


def device_manifest_topic(prefix: str, group: str, device: str) -> str:
    """Retained per device: the manifest a staged rollout gave this device (a stage, or a rollback)."""
    return f"{prefix}/{group}/devices/{device}/manifest"


def device_manifest_wildcard(prefix: str, group: str) -> str:
    return f"{prefix}/{group}/devices/+/manifest"

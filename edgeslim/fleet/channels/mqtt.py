"""MQTT channel: the signed manifest as a retained QoS-1 message on the group's manifest topic.

Retained, so a device that is offline now (or joins the group later) receives it on subscribe.
"""

from __future__ import annotations

from edgeslim.config import FleetParams
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet.manifest import Manifest
from edgeslim.fleet.topics import manifest_topic


def send(params: FleetParams, manifest: Manifest, envelope: bytes) -> None:
    cfg = params.mqtt
    client = mq.make_client("edgeslim-pager")
    mq.connect(client, cfg.host, cfg.port, cfg.keepalive_s, cfg.timeout_s)
    try:
        mq.publish(client, manifest_topic(cfg.topic_prefix, manifest.group), envelope, cfg.qos, True, cfg.timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()

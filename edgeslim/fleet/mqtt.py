"""paho-mqtt 2.x client setup shared by the publisher, the rollout tracker and the agent."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode


class ConnectFailed(OSError):
    """The broker refused or did not answer the connection in time."""


def make_client(name: str) -> paho.Client:
    """A clean-session MQTT 3.1.1 client with a unique id (two tools may share a name)."""
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv311)


def connect(client: paho.Client, host: str, port: int, keepalive_s: int, timeout_s: float) -> None:
    """Connect and start the network thread; return only once the broker accepted (CONNACK)."""
    accepted = threading.Event()
    refused: list[str] = []

    def on_connect(_c, _u, _flags, reason, _props) -> None:  # noqa: ANN001 (paho callback)
        if reason.is_failure:
            refused.append(str(reason))
        accepted.set()

    client.on_connect = on_connect
    client.connect(host, port, keepalive_s)  # raises OSError when nothing listens
    client.loop_start()
    if not accepted.wait(timeout_s) or refused:
        client.loop_stop()
        client.disconnect()
        raise ConnectFailed(
            f"broker {host}:{port} " + (f"refused the connection: {refused[0]}" if refused else f"did not answer within {timeout_s:g}s")
        )


def publish(client: paho.Client, topic: str, payload: bytes, qos: int, retain: bool, timeout_s: float) -> None:
    """Publish and wait for the broker's acknowledgement (PUBACK/PUBCOMP for QoS 1/2)."""
    info = client.publish(topic, payload, qos=qos, retain=retain)
    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise OSError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
    info.wait_for_publish(timeout_s)
    if not info.is_published():
        raise OSError(f"broker did not acknowledge the message on {topic} within {timeout_s:g}s")

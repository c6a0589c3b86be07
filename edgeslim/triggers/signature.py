"""Verify an MLflow registry webhook delivery exactly as the pinned MLflow (3.17) signs it.

MLflow's ``webhooks/delivery.py`` sends ``X-MLflow-Delivery-Id``, ``X-MLflow-Timestamp`` (unix
seconds) and ``X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "{delivery_id}.{timestamp}.{body}">``.
The delivery id and timestamp are inside the MAC, so neither can be swapped onto another body; the
timestamp window bounds how long a captured delivery can be replayed, and the receiver's
delivery-id store (``dedup.py``) catches replays inside the window. (The fleet's own HMAC in
``edgeslim.fleet.webhook_auth`` is a different scheme: hex, no delivery id; only the constant-time
comparison is shared practice.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"


class DeliveryRejected(Exception):
    """A delivery that must not start anything; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, signed timestamp and raw body."""

    delivery_id: str
    timestamp: int
    body: bytes


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC>`` over ``"{delivery_id}.{timestamp}.{body}"`` (MLflow's format)."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float, max_age_s: float) -> Delivery:
    """Return the delivery when signature and timestamp hold, else raise ``DeliveryRejected``.

    The signature is checked before the timestamp is trusted: an unsigned timestamp says nothing.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery_id = lowered.get(DELIVERY_ID_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (delivery_id and timestamp and signature):
        raise DeliveryRejected("missing MLflow delivery id, timestamp or signature header", 400)
    if not hmac.compare_digest(sign(secret, delivery_id, timestamp, body), signature):
        raise DeliveryRejected("signature does not match (wrong secret or altered delivery)")
    try:
        sent = int(timestamp)
    except ValueError:
        raise DeliveryRejected(f"timestamp {timestamp!r} is not unix seconds", 400) from None
    if abs(now - sent) > max_age_s:
        raise DeliveryRejected(f"timestamp {sent} is {now - sent:+.0f}s from now, outside the {max_age_s:.0f}s window")
    return Delivery(delivery_id, sent, body)

"""The webhook channel's HMAC: shared by the sender and the agent's webhook listener.

The Ed25519 signature already proves where a manifest comes from; the HMAC header lets a receiver
drop junk before parsing it. It covers a timestamp too, so a receiver can bound how old a POST may be.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Edgeslim-Signature"
TIMESTAMP_HEADER = "X-Edgeslim-Timestamp"


def body_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``: what the receiver recomputes."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

"""sha256 of a file in bounded memory: artifacts (models, engines) can be larger than a device's RAM
allows reading at once. Its own module so the edge agent can use it without the fleet's boto3."""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()

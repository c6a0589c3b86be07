"""Seeded random calibration sample of the calib-pool (the curation issue replaces the picker).

The output is a manifest (path, sha256) so the quantization step and the lineage tags see exactly
which images calibrated the model.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from edgeslim.data.images import list_images
from edgeslim.errors import DataError


def sample_calibration(pool: Path, num_images: int, seed: int, manifest_path: Path) -> tuple[list[Path], str]:
    """Pick ``num_images`` from ``pool`` (all of it when smaller); return them and the manifest's sha256."""
    images = list_images(pool)
    if num_images > len(images):
        raise DataError(f"calibration wants {num_images} images but pool {pool} has only {len(images)}")
    picked = sorted(random.Random(seed).sample(images, num_images))
    entries = [{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in picked]
    text = json.dumps({"pool": str(pool), "seed": seed, "method": "random", "images": entries}, indent=1) + "\n"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(text)
    # The hash covers image content and selection only, so it is the same wherever the pool lives.
    digest = hashlib.sha256("\n".join(e["sha256"] for e in entries).encode()).hexdigest()
    return picked, digest

"""The pipeline's half of the on-device equivalence check: a golden set for one shipped artifact.

The images are generated boards (``edgeslim.agent.sample``, one seed per image, none of them the
smoke test's), so no dataset has to travel with a page; the outputs are what the format's runtime, at
the format's precision, here, computes for exactly the file the manifest ships. A device compares its own outputs
with these (``edgeslim.agent.golden``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.agent.golden import GoldenSet
from edgeslim.agent.sample import SEED
from edgeslim.agent.smoke import feed
from edgeslim.runtime.session import golden_outputs, open_session


def golden_set(model: Path, fmt: str, images: int, io: dict) -> GoldenSet:
    """Inputs and outputs of ``model`` run as ``fmt`` (its precision) on ``images`` generated boards
    (``io``: the manifest's shapes)."""
    session = open_session(model, fmt)
    feeds = [
        {i.name: feed(i.shape, io.get("inputs", {}).get(i.name), SEED + 1 + index) for i in session.get_inputs()} for index in range(images)
    ]
    inputs = {i.name: np.stack([f[i.name] for f in feeds]) for i in session.get_inputs()}
    return GoldenSet(inputs, golden_outputs(session, feeds))


def write_golden(model: Path, fmt: str, images: int, io: dict) -> Path:
    """``<model stem>.<format>.golden.npz`` beside ``model`` (one per format: an IR runs as fp32 and as bf16)."""
    return golden_set(model, fmt, images, io).save(model.with_name(f"{model.stem}.{fmt}.golden.npz"))

"""The pipeline's half of the on-device equivalence check: a golden set for one shipped artifact.

The images are generated boards (``edgeslim.agent.sample``, one seed per image, none of them the
smoke test's), so no dataset has to travel with a page; the outputs are what ONNX Runtime's CPU
provider, here, computes for exactly the file the manifest ships. A device compares its own outputs
with these (``edgeslim.agent.golden``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslim.agent.golden import GoldenSet
from edgeslim.agent.sample import SEED
from edgeslim.agent.smoke import feed, ort_session


def golden_set(model: Path, images: int, io: dict) -> GoldenSet:
    """Inputs and outputs of ``model`` on ``images`` generated boards (``io``: the manifest's shapes)."""
    session = ort_session(model)
    names = [o.name for o in session.get_outputs()]
    inputs: dict[str, list[np.ndarray]] = {i.name: [] for i in session.get_inputs()}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for index in range(images):
        feeds = {i.name: feed(i.shape, io.get("inputs", {}).get(i.name), SEED + 1 + index) for i in session.get_inputs()}
        for name, value in feeds.items():
            inputs[name].append(value)
        for name, value in zip(names, session.run(None, feeds), strict=True):
            outputs[name].append(np.asarray(value))
    return GoldenSet({k: np.stack(v) for k, v in inputs.items()}, {k: np.stack(v) for k, v in outputs.items()})


def write_golden(model: Path, images: int, io: dict) -> Path:
    """``<model stem>.golden.npz`` beside ``model``."""
    return golden_set(model, images, io).save(model.with_name(f"{model.stem}.golden.npz"))

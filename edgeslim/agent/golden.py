"""The on-device equivalence check: does this device compute what the pipeline gated?

The manifest names a golden set for the artifact: a few input images and the outputs the
pipeline's own ONNX Runtime run produced for exactly that file. The smoke test only proves the
model runs and gives finite outputs of the right shapes; a device whose runtime build, CPU kernels
or a silently corrupted file compute something else passes it. This check compares numbers.

The error of one output is ``max|device − pipeline| / max|pipeline|`` (the output's own scale), and
the set's error is the largest over images and outputs. One figure, reported in the status, so a
fleet's spread of errors can be read off the rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUT_PREFIX = "input."
OUTPUT_PREFIX = "output."
TINY = 1e-12  # an all-zero reference output: compare absolute differences instead


@dataclass(frozen=True)
class GoldenSet:
    inputs: dict[str, np.ndarray]  # name → [images, *input shape]
    outputs: dict[str, np.ndarray]  # name → [images, *output shape]

    @property
    def images(self) -> int:
        return len(next(iter(self.inputs.values())))

    def save(self, path: Path) -> Path:
        arrays = {f"{INPUT_PREFIX}{k}": v for k, v in self.inputs.items()} | {f"{OUTPUT_PREFIX}{k}": v for k, v in self.outputs.items()}
        with path.open("wb") as out:
            np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub wants positional arrays first
        return path

    @classmethod
    def load(cls, path: Path) -> "GoldenSet":
        """Read a golden .npz (no pickles: it came over the network, although its sha256 was checked)."""
        with np.load(path, allow_pickle=False) as data:
            inputs = {k.removeprefix(INPUT_PREFIX): data[k] for k in data.files if k.startswith(INPUT_PREFIX)}
            outputs = {k.removeprefix(OUTPUT_PREFIX): data[k] for k in data.files if k.startswith(OUTPUT_PREFIX)}
        counts = {len(v) for v in (*inputs.values(), *outputs.values())}
        if not inputs or not outputs or len(counts) != 1:
            raise ValueError("golden set needs inputs and outputs with the same number of images")
        return cls(inputs, outputs)


def output_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """``max|actual − reference| / max|reference|``; infinite when the shapes differ."""
    if actual.shape != reference.shape:
        return float("inf")
    diff = float(np.max(np.abs(actual.astype(np.float64) - reference.astype(np.float64)), initial=0.0))
    scale = float(np.max(np.abs(reference.astype(np.float64)), initial=0.0))
    return diff / scale if scale > TINY else diff


def golden_error(session: Any, golden: GoldenSet) -> float:
    """The largest output error of ``session`` over the golden set's images."""
    names = [o.name for o in session.get_outputs()]
    missing = set(golden.outputs) - set(names)
    if missing:
        return float("inf")
    worst = 0.0
    for i in range(golden.images):
        feeds: Mapping[str, np.ndarray] = {k: v[i] for k, v in golden.inputs.items()}
        got = dict(zip(names, session.run(None, dict(feeds)), strict=True))
        worst = max(worst, *(output_error(np.asarray(got[k]), ref[i]) for k, ref in golden.outputs.items()))
    return worst

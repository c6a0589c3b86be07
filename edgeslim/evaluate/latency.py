"""Latency at batch 1 of a stage's artifact: eager PyTorch for .pt, the artifact's runtime otherwise.

Median of ``runs`` after ``warmup``, with a fixed thread count so stages are comparable within
one run. These are report figures, never assertions (speed is benchmarked in benchmarks/); models
are compared with each other in paired rounds (:mod:`edgeslim.runtime.timing`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeslim.config import EvaluateParams
from edgeslim.models.checkpoint import load_checkpoint
from edgeslim.runtime.formats import Format
from edgeslim.runtime.session import open_session, runner
from edgeslim.runtime.timing import median_ms


def runtime_latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams, fmt: Format | None = None) -> float:
    """Latency of an exported artifact on its runtime, at the precision ``fmt`` names (default: the
    kind's FP32, or the engine's own)."""
    return median_ms(runner(open_session(path, fmt, ev.threads), sample), ev.latency_runs, ev.latency_warmup)


def torch_latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams) -> float:
    _, model = load_checkpoint(path)
    x = torch.from_numpy(sample)
    previous = torch.get_num_threads()
    torch.set_num_threads(ev.threads)
    try:
        with torch.inference_mode():
            return median_ms(lambda: model(x), ev.latency_runs, ev.latency_warmup)
    finally:
        torch.set_num_threads(previous)


def latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams, fmt: Format | None = None) -> float:
    """A .pt in eager PyTorch; anything else on its runtime (:mod:`edgeslim.runtime`)."""
    return torch_latency_ms(path, sample, ev) if Path(path).suffix == ".pt" else runtime_latency_ms(path, sample, ev, fmt)

"""The health check: load the model in ONNX Runtime and run it once on the sample image.

Passes when the session loads, every output has the shape the publisher recorded (static dims),
no output holds NaN or Inf, and (if a budget is set) the latency fits. The latency is recorded
either way, so the status message says how fast this device runs the new model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeslim.agent.sample import board_image

IMAGE_RANK = 4  # NCHW
IMAGE_CHANNELS = 3
DYNAMIC_DIM = 1  # what a dynamic (batch) dim is fed with


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    latency_ms: float | None
    reason: str | None = None


def _feed(shape: list, expected: list | None) -> np.ndarray:
    dims = [d if isinstance(d, int) and d > 0 else DYNAMIC_DIM for d in (expected or shape)]
    if len(dims) == IMAGE_RANK and dims[1] == IMAGE_CHANNELS:
        return np.repeat(board_image(dims[2], dims[3]), dims[0], axis=0)
    return np.zeros(dims, np.float32)


def _shape_ok(actual: tuple[int, ...], expected: list) -> bool:
    return len(actual) == len(expected) and all(e is None or e == a for a, e in zip(actual, expected, strict=True))


def smoke_test(path: Path, io: dict, max_latency_ms: float | None) -> SmokeResult:
    """Run the model at ``path`` once; ``io`` holds the manifest's expected input/output shapes."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: _feed(i.shape, io.get("inputs", {}).get(i.name)) for i in session.get_inputs()}
        start = time.perf_counter()
        outputs = session.run(None, feeds)
        latency_ms = (time.perf_counter() - start) * 1000
    except Exception as exc:  # noqa: BLE001 (any ORT failure means: this model cannot serve)
        return SmokeResult(False, None, f"model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}")
    expected = io.get("outputs", {})
    for meta, value in zip(session.get_outputs(), outputs, strict=True):
        want = expected.get(meta.name)
        if want is not None and not _shape_ok(value.shape, want):
            return SmokeResult(False, latency_ms, f"output {meta.name} has shape {list(value.shape)}, manifest says {want}")
        if not np.isfinite(value).all():
            return SmokeResult(False, latency_ms, f"output {meta.name} holds NaN/Inf on the sample image")
    missing = set(expected) - {o.name for o in session.get_outputs()}
    if missing:
        return SmokeResult(False, latency_ms, f"model lacks outputs {sorted(missing)}")
    if max_latency_ms is not None and latency_ms > max_latency_ms:
        return SmokeResult(False, latency_ms, f"latency {latency_ms:.1f} ms over the budget of {max_latency_ms:g} ms")
    return SmokeResult(True, latency_ms)

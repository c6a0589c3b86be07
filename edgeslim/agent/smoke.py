"""The health check: load the model, run it once on the sample image, and compare it with its golden set.

Passes when the session loads, every output has the shape the publisher recorded (static dims),
no output holds NaN or Inf, (if a budget is set) the latency fits, and (if the manifest carries a
golden set) the outputs on the golden images are within its tolerance of the pipeline's. Latency
and golden error are recorded either way, so the status says how fast and how exact this device is.

The runtime is a parameter (a path and a format → a session of :mod:`edgeslim.runtime`, which sets the
format's precision explicitly): the runtime layer on a device, and a faulty one in the fleet
simulator's fault injection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.agent.golden import GoldenSet, golden_error
from edgeslim.agent.sample import SEED, board_image
from edgeslim.runtime.session import open_session

Runtime = Callable[[Path, str], Any]  # (model path, format name) → session

IMAGE_RANK = 4  # NCHW
IMAGE_CHANNELS = 3
DYNAMIC_DIM = 1  # what a dynamic (batch) dim is fed with


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    latency_ms: float | None
    reason: str | None = None
    golden_error: float | None = None


def device_session(path: Path, fmt: str, threads: int | None = None) -> Any:
    """The device's session for ``path`` as ``fmt`` (its runtime, at its precision); ``threads``
    caps its intra-op threads (default: the runtime's)."""
    return open_session(path, fmt, threads)


def feed(shape: list, expected: list | None, seed: int = SEED) -> np.ndarray:
    """An input for a model input of ``shape``: a board image for an NCHW image input, zeros otherwise."""
    dims = [d if isinstance(d, int) and d > 0 else DYNAMIC_DIM for d in (expected or shape)]
    if len(dims) == IMAGE_RANK and dims[1] == IMAGE_CHANNELS:
        return np.repeat(board_image(dims[2], dims[3], seed), dims[0], axis=0)
    return np.zeros(dims, np.float32)


def _shape_ok(actual: tuple[int, ...], expected: list) -> bool:
    return len(actual) == len(expected) and all(e is None or e == a for a, e in zip(actual, expected, strict=True))


def smoke_test(
    path: Path,
    fmt: str,
    io: dict,
    max_latency_ms: float | None,
    golden: GoldenSet | None = None,
    tolerance: float | None = None,
    runtime: Runtime = device_session,
) -> SmokeResult:
    """Run the model at ``path``; ``io`` holds the manifest's expected input/output shapes."""
    try:
        session = runtime(path, fmt)
        feeds = {i.name: feed(i.shape, io.get("inputs", {}).get(i.name)) for i in session.get_inputs()}
        start = time.perf_counter()
        outputs = session.run(None, feeds)
        latency_ms = (time.perf_counter() - start) * 1000
    except Exception as exc:  # noqa: BLE001 (any runtime failure means: this model cannot serve)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return SmokeResult(False, None, f"model does not run as {fmt}: {first}")
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
    if golden is None or tolerance is None:
        return SmokeResult(True, latency_ms)
    try:
        error = golden_error(session, golden)
    except Exception as exc:  # noqa: BLE001 (a golden image the model cannot run is a failed check)
        return SmokeResult(False, latency_ms, f"model does not run on the golden set: {str(exc).splitlines()[0][:300]}")
    if not error <= tolerance:  # NaN and inf fail too
        return SmokeResult(
            False,
            latency_ms,
            f"outputs differ from the pipeline's on the golden set: error {error:.3g} over the tolerance {tolerance:g}",
            error,
        )
    return SmokeResult(True, latency_ms, golden_error=error)

"""One interface over every runtime: open a model, run it, time it, produce its golden outputs.

A session looks like ONNX Runtime's (``get_inputs()``/``get_outputs()`` with ``.name`` and
``.shape``, ``run(None, feeds)`` returning one array per output), which is what the agent's smoke
and golden checks, the equivalence gates and the latency figures call; each backend adapts its
runtime to it. ``open_session`` takes the format, whose precision the backend sets explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeslim.runtime.formats import ONNXRUNTIME, OPENVINO, TENSORRT, Format, default_format, format_named


class Session(Protocol):
    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> Sequence[Any]: ...


def open_session(path: Path, fmt: Format | str | None = None, threads: int | None = None) -> Session:
    """``path`` ready for inference as ``fmt`` (default: FP32 on the runtime its kind implies), with
    ``threads`` intra-op threads (None: the runtime's default)."""
    f = format_named(fmt) if isinstance(fmt, str) else (fmt or default_format(Path(path)))
    if f.runtime == ONNXRUNTIME:
        from edgeslim.runtime import onnxruntime_backend

        return onnxruntime_backend.open_session(path, threads, spinning=False)  # no busy-wait stealing cores from the next model timed
    if f.runtime == OPENVINO:
        from edgeslim.runtime import openvino_backend

        return openvino_backend.open_session(Path(path), f.float_precision, threads)
    if f.runtime == TENSORRT:
        from edgeslim.runtime import tensorrt_backend

        return tensorrt_backend.open_session(Path(path))
    raise ValueError(f"no backend for runtime {f.runtime!r}")


def runner(session: Session, sample: np.ndarray) -> Callable[[], object]:
    """One call of ``session`` on ``sample`` (its first input), for the timers of :mod:`.timing`."""
    feed = {session.get_inputs()[0].name: sample}
    return lambda: session.run(None, feed)


def first_output(session: Session, images: Sequence[np.ndarray]) -> np.ndarray:
    """The first output for each 1xCxHxW image, stacked on the batch axis (static batch-1 exports)."""
    name = session.get_inputs()[0].name
    return np.concatenate([np.asarray(session.run(None, {name: x})[0]) for x in images])


def every_output(session: Session, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each output of ``session`` (in its order) for each 1xCxHxW image, stacked on the batch axis."""
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: x}) for x in images]
    return [np.concatenate([np.asarray(r[k]) for r in runs]) for k in range(len(runs[0]))]


def golden_outputs(session: Session, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every output of ``session`` for each feed, stacked: what a device must reproduce."""
    names = [o.name for o in session.get_outputs()]
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for f in feeds:
        for n, value in zip(names, session.run(None, dict(f)), strict=True):
            outputs[n].append(np.asarray(value))
    return {k: np.stack(v) for k, v in outputs.items()}


def unavailable(fmt: Format | str) -> str | None:
    """Why this machine cannot run ``fmt`` (its runtime missing, its precision not on this CPU), or None."""
    f = format_named(fmt) if isinstance(fmt, str) else fmt
    try:
        if f.runtime == ONNXRUNTIME:
            from edgeslim.runtime import onnxruntime_backend as backend
        elif f.runtime == OPENVINO:
            from edgeslim.runtime import openvino_backend as backend  # type: ignore[no-redef]
        else:
            from edgeslim.runtime import tensorrt_backend as backend  # type: ignore[no-redef]
    except ImportError as exc:
        return f"{f.runtime} does not import here ({exc})"
    return backend.unavailable(f.precision)

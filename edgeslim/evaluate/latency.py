"""CPU latency at batch 1: ONNX Runtime for .onnx, eager PyTorch for .pt, and the ratio of two.

Median of ``runs`` after ``warmup``, with a fixed thread count so stages are comparable within
one run. These are report figures, never assertions (speed is benchmarked in benchmarks/).

``interleaved_ratio`` is the one way edgeslim compares two models' speed (pruning's latency
budget, the benchmark's ratios). On a shared machine a model timed alone and timed again minutes
later differed by 20-40%; interference comes in spells far longer than one call, so calling the
two models in turn (A B B A ...) exposes both to the same spells, and the ratio of the two medians
within a block of calls is steady where either time is not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from edgeslim.config import EvaluateParams
from edgeslim.models.checkpoint import load_checkpoint


def median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


@dataclass(frozen=True)
class Ratio:
    """``b``'s latency over ``a``'s: the median of the per-block ratios, and what it came from."""

    ratio: float
    block_ratios: list[float]  # per block: median of b's calls / median of a's calls
    a_ms: float  # median over all of a's calls
    b_ms: float
    calls_per_block: int

    def as_dict(self) -> dict[str, object]:
        return {
            "ratio": self.ratio,
            "block_ratios": self.block_ratios,
            "a_ms": self.a_ms,
            "b_ms": self.b_ms,
            "calls_per_block": self.calls_per_block,
        }


def _timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def interleaved_ratio(a: Callable[[], object], b: Callable[[], object], calls: int, blocks: int, warmup: int) -> Ratio:
    """Time ``a`` and ``b`` in turn, ``calls`` times each per block over ``blocks`` blocks, the order
    flipping every call (A B, B A, ...) so that neither always runs second, on warmer caches."""
    for _ in range(warmup):
        a()
        b()
    ratios, all_a, all_b = [], [], []
    for _ in range(blocks):
        ta, tb = [], []
        for i in range(calls):
            if i % 2:
                tb.append(_timed_ms(b))
                ta.append(_timed_ms(a))
            else:
                ta.append(_timed_ms(a))
                tb.append(_timed_ms(b))
        ratios.append(statistics.median(tb) / statistics.median(ta))
        all_a += ta
        all_b += tb
    return Ratio(statistics.median(ratios), ratios, statistics.median(all_a), statistics.median(all_b), calls)


def cpu_session(path: Path, threads: int, profile_prefix: Path | None = None) -> ort.InferenceSession:
    """The CPU session every latency figure uses (intra-op ``threads``, inter-op 1); with
    ``profile_prefix``, ONNX Runtime's per-node profiler on."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_runner(session: ort.InferenceSession, sample: np.ndarray) -> Callable[[], object]:
    """One call of ``session`` on ``sample``, for the timers here."""
    feed = {session.get_inputs()[0].name: sample}
    return lambda: session.run(None, feed)


def onnx_latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams) -> float:
    return median_ms(onnx_runner(cpu_session(path, ev.threads), sample), ev.latency_runs, ev.latency_warmup)


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


def tensorrt_latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams) -> float:
    """GPU latency of a TensorRT engine (input already on the device), synchronized per run."""
    import tensorrt as trt
    from ultralytics.nn.backends.base import BaseBackend

    import edgeslim.ultra  # noqa: F401  (offline ultralytics settings before its import)

    offset, _ = BaseBackend.engine_header(path)  # skip the metadata header ultralytics' loader reads
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(path).read_bytes()[offset:])
    context = engine.create_execution_context()
    buffers = []  # keeps the device tensors alive while the context points at them
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(context.get_tensor_shape(name))
        host = (
            sample if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else np.empty(shape, trt.nptype(engine.get_tensor_dtype(name)))
        )
        buffers.append(torch.from_numpy(np.ascontiguousarray(host)).cuda())
        context.set_tensor_address(name, buffers[-1].data_ptr())
    stream = torch.cuda.current_stream()

    def run() -> None:
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()

    return median_ms(run, ev.latency_runs, ev.latency_warmup)


def latency_ms(path: Path, sample: np.ndarray, ev: EvaluateParams) -> float:
    suffix = Path(path).suffix
    if suffix == ".engine":
        return tensorrt_latency_ms(path, sample, ev)
    return onnx_latency_ms(path, sample, ev) if suffix == ".onnx" else torch_latency_ms(path, sample, ev)

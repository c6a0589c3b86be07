"""One measurement in a fresh process: load one artifact, time it, report its memory high-water mark.

Why a child process per measurement: ONNX Runtime allocates outside Python's heap (tracemalloc sees
none of it) and a process's peak RSS never goes down, so the only honest per-artifact peak is the
one of a process that ran nothing else. After the runtime is imported, the kernel's high-water mark
is reset (``/proc/self/clear_refs``), so ``peak_delta_mib`` is what loading and running this
artifact added on top of the runtime, and ``peak_mib`` is the whole process, runtime included.

Invoked by benchmarks.measure as ``python -m benchmarks.probe '<json spec>'``; prints one line
``PROBE <json result>`` with the raw timed latencies, which the parent pools across rounds. Spec keys: artifact, runtime (ort | torch), inputs (.npy, NCHW float32),
batch, threads, runs, warmup, device (cpu | cuda), precision (fp32 | fp16, torch only),
providers (ONNX Runtime execution providers, ort only).

A spec with ``pair`` (``{"a", "b", "b_graph", "b_first"}``, plus ``calls`` and ``blocks``) instead loads two
ONNX models side by side and returns ``edgeslim.runtime.timing.interleaved_ratio`` of them at
batch 1: the two are called in turn, in one process, so that they share every spell of
interference (see benchmarks.paired).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULT_PREFIX = "PROBE "
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK_RSS = "5"  # clear_refs command that resets VmHWM to the current RSS (Linux >= 4.0)
KIB_PER_MIB = 1024
BYTES_PER_MIB = 2**20

Runner = Callable[[np.ndarray], object]
Loader = Callable[[dict], tuple[Runner, Callable[[], float | None]]]


def _memory_kib() -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident set size of this process, KiB."""
    fields = {}
    for line in STATUS.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
        return True
    except OSError:
        return False


def _ort_loader() -> Loader:
    from edgeslim.runtime import onnxruntime_backend

    def load(spec: dict) -> tuple[Runner, Callable[[], float | None]]:
        session = onnxruntime_backend.open_session(
            Path(spec["artifact"]), spec["threads"], graph_optimization=spec.get("graph_optimization", "all"), providers=spec["providers"]
        )  # ONNX Runtime's default graph optimization: all
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})), (lambda: None)

    return load


def _torch_loader() -> Loader:
    import torch

    from edgeslim.models.checkpoint import load_checkpoint

    def load(spec: dict) -> tuple[Runner, Callable[[], float | None]]:
        torch.set_num_threads(spec["threads"])
        device = torch.device(spec["device"])
        dtype = torch.float16 if spec["precision"] == "fp16" else torch.float32
        _, model = load_checkpoint(Path(spec["artifact"]))
        model = model.to(device=device, dtype=dtype)
        on_gpu = device.type == "cuda"

        @torch.inference_mode()
        def run(x: np.ndarray) -> object:
            out = model(torch.from_numpy(x).to(device=device, dtype=dtype))
            if on_gpu:
                torch.cuda.synchronize()
            return out

        return run, (lambda: torch.cuda.max_memory_allocated() / BYTES_PER_MIB if on_gpu else None)

    return load


RUNTIMES: dict[str, Callable[[], Loader]] = {"ort": _ort_loader, "torch": _torch_loader}


def latencies_ms(run: Runner, x: np.ndarray, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def measure(spec: dict) -> dict:
    """Raw timed latencies (ms) and memory figures; benchmarks.measure pools and summarizes them."""
    load = RUNTIMES[spec["runtime"]]()  # runtime imported before the peak is reset
    x = np.ascontiguousarray(np.load(spec["inputs"])[: spec["batch"]])
    if len(x) < spec["batch"]:
        raise ValueError(f"{spec['inputs']} holds {len(x)} images, batch {spec['batch']} asked")
    reset = _reset_peak()
    before = _memory_kib()
    start = time.perf_counter()
    run, device_peak = load(spec)
    load_s = time.perf_counter() - start
    times = latencies_ms(run, x, spec["warmup"], spec["runs"])
    after = _memory_kib()
    memory = {
        "peak_mib": after["VmHWM"] / KIB_PER_MIB,
        "peak_delta_mib": (after["VmHWM"] - before["VmRSS"]) / KIB_PER_MIB,
        "runtime_only_mib": before["VmRSS"] / KIB_PER_MIB,
        "peak_reset_after_import": reset,
    }
    gpu_peak = device_peak()
    if gpu_peak is not None:
        memory["cuda_peak_allocated_mib"] = gpu_peak
    return {"times_ms": times, "load_s": load_s, "memory": memory}


def measure_pair(spec: dict) -> dict:
    """``b``'s latency over ``a``'s, the two ONNX models called in turn (batch 1)."""
    from edgeslim.runtime.timing import interleaved_ratio

    load = _ort_loader()
    x = np.ascontiguousarray(np.load(spec["inputs"])[:1])
    pair = spec["pair"]
    sides = {
        "a": {**spec, "artifact": pair["a"], "graph_optimization": "all"},
        "b": {**spec, "artifact": pair["b"], "graph_optimization": pair["b_graph"]},
    }
    order = ("b", "a") if pair["b_first"] else ("a", "b")
    loaded = {side: load(sides[side])[0] for side in order}
    run_a, run_b = loaded["a"], loaded["b"]
    return interleaved_ratio(lambda: run_a(x), lambda: run_b(x), spec["calls"], spec["blocks"], spec["warmup"]).as_dict()


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    print(RESULT_PREFIX + json.dumps(measure_pair(spec) if "pair" in spec else measure(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

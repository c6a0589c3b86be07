"""Parent side of the measurements: probe rounds in child processes, pooled stats, MACs, file facts.

Latency and peak memory come from benchmarks.probe in a child process (see its docstring for why);
MACs and parameters come from the torch model because an ONNX graph has no MAC counter that sees
through ultralytics' fused layers (an INT8 graph runs the same MACs as its FP32 source).
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from thop import profile

from benchmarks.probe import RESULT_PREFIX
from edgeslim.data.images import preprocess_batch
from edgeslim.models.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
ERROR_TAIL_CHARS = 2000
P90 = 90
MS_PER_S = 1000.0
DEFAULT_ONNX_DOMAIN = ("", "ai.onnx")


@dataclass(frozen=True)
class Timing:
    """How every latency figure of one benchmark is taken (the same for all artifacts).

    ``runs`` timed calls per figure are split over ``rounds`` probes (each in a fresh process,
    each with its own ``warmup``); the caller interleaves rounds across artifacts, so every
    artifact gets probes at several moments and at least one of them, likely, in a quiet one.
    """

    threads: int
    runs: int
    warmup: int
    rounds: int
    timeout_s: float

    @property
    def runs_per_round(self) -> int:
        return math.ceil(self.runs / self.rounds)


def save_inputs(val: list[Path], imgsz: int, count: int, out: Path) -> Path:
    """The first ``count`` held-out val images, letterboxed as the flow feeds them, as one .npy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, preprocess_batch(val[:count], imgsz))
    return out


def run_probe(spec: dict, timeout_s: float, what: str) -> dict:
    """Run benchmarks.probe on ``spec`` in a fresh process; its result, or ``{"error": ...}``."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.probe", json.dumps(spec)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{what} ran past {timeout_s:.0f}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return {"error": f"probe exited {done.returncode}: {(done.stderr or done.stdout)[-ERROR_TAIL_CHARS:]}"}


def probe(
    artifact: Path,
    inputs: Path,
    batch: int,
    timing: Timing,
    device: str = "cpu",
    precision: str = "fp32",
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    graph_optimization: str = "all",
) -> dict:
    """One round: raw latencies and peak memory of ``artifact`` at ``batch``, from a fresh process
    (``graph_optimization``: ONNX Runtime's level, see edgeslim.runtime.onnxruntime_backend.GRAPH_LEVELS)."""
    spec = {
        "artifact": str(artifact),
        "runtime": "ort" if artifact.suffix == ".onnx" else "torch",
        "inputs": str(inputs),
        "batch": batch,
        "threads": timing.threads,
        "runs": timing.runs_per_round,
        "warmup": timing.warmup,
        "device": device,
        "precision": precision,
        "providers": list(providers),
        "graph_optimization": graph_optimization,
    }
    return run_probe(spec, timing.timeout_s, f"probe of {artifact.name} at batch {batch}")


def _stats(times: list[float]) -> dict[str, float]:
    return {
        "median": float(np.median(times)),
        "p90": float(np.percentile(times, P90)),
        "mean": float(np.mean(times)),
        "min": float(np.min(times)),
        "max": float(np.max(times)),
    }


def summarize(file: Path, batch: int, rounds: list[dict], timing: Timing) -> dict:
    """The figure of the best round (lowest median), every round's median, pooled stats, highest memory peak.

    Why the best round: interference from outside (a busy neighbour, a throttled core) only ever
    adds time, and on a shared machine it comes in spells of seconds that can cover a whole probe
    process; the fastest process is the best estimate of what the artifact itself costs (timeit's
    reasoning). The pooled stats, over every timed call of every round, show what this machine
    delivered, spells included.
    """
    failed = next((r["error"] for r in rounds if "error" in r), None)
    if failed:
        return {"file": str(file), "batch": batch, "error": failed}
    medians = [float(np.median(r["times_ms"])) for r in rounds]
    best = medians.index(min(medians))
    return {
        "file": str(file),
        "batch": batch,
        "threads": timing.threads,
        "rounds": len(rounds),
        "runs_per_round": timing.runs_per_round,
        "warmup_per_round": timing.warmup,
        "best_round": best,
        "latency_ms": {**_stats(rounds[best]["times_ms"]), "round_medians": medians},
        "pooled_latency_ms": _stats([t for r in rounds for t in r["times_ms"]]),
        "throughput_ips": batch * MS_PER_S / medians[best],
        "load_s": float(np.median([r["load_s"] for r in rounds])),
        "memory": {
            **max((r["memory"] for r in rounds), key=lambda m: m["peak_mib"]),
            "peak_delta_mib": max(r["memory"]["peak_delta_mib"] for r in rounds),
        },
    }


def model_cost(weights: Path, imgsz: int) -> dict:
    """MACs (thop, one imgsz x imgsz image) and parameter count of a checkpoint's model."""
    _, model = load_checkpoint(weights)
    x = torch.zeros(1, 3, imgsz, imgsz)
    macs, _ = profile(copy.deepcopy(model), inputs=(x,), verbose=False)
    return {"macs": int(macs), "params": int(sum(p.numel() for p in model.parameters())), "source": weights.name}


def onnx_opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in DEFAULT_ONNX_DOMAIN)


def input_shape(path: Path) -> list[int | str]:
    """The ONNX graph input's shape: ints for static dimensions, names for dynamic ones."""
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]

"""Latency ratios that hold up on a shared machine: the two models called in turn, in one process.

Why: two probes of the *same* network taken minutes apart differed by 20-40% on these machines
(ultralytics' FP32 export vs edgeslim's unpruned export, 2026-12-01: 4.10 vs 4.87 ms), more than the
effects reported; so did pairs of whole probe processes run back to back (per-pair ratios 0.68 to
1.48 for the identical pair, same day). Interference comes in spells far longer than one call, so
here both models are loaded in one fresh process (benchmarks.probe) and called in turn, A B, B A,
..., ``pair_runs`` calls each per block (``edgeslim.runtime.timing.interleaved_ratio``, the
method pruning's latency budget uses too): every spell hits both alike. One process can still
favour one side throughout (which session's threads the scheduler placed better: an identical pair
measured 1.38 in every block of one process under load, 1.01 in the next), so the blocks are
spread over ``pair_processes`` processes, the load order flipping each time. Each ratio is the
median over ``pairs`` blocks of (b's median / a's median); the 95% interval is a seeded percentile
bootstrap of that median over the blocks. The identical-network pair is kept as a self-check: its
ratio must come out at 1.00 within ``SELF_CHECK_TOLERANCE``, or the run says that its ratios cannot
be trusted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.measure import Timing, run_probe

SELF_CHECK_TOLERANCE = 0.03
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0


def bootstrap_ci(values: list[float]) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (seeded: the same ratios give the same interval)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    data = np.asarray(values)
    medians = np.median(rng.choice(data, size=(BOOTSTRAP_DRAWS, len(data)), replace=True), axis=1)
    tail = (1.0 - CONFIDENCE) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1.0 - tail))


def paired_ratio(a: Path, b: Path, inputs: Path, timing: Timing, pairs: int, processes: int, b_graph: str = "all") -> dict:
    """Latency of ``b`` over ``a`` at batch 1: median of ``pairs`` block ratios taken over ``processes``
    fresh probe processes, its 95% CI, both sides' medians (``b_graph``: ONNX Runtime graph optimization
    level for ``b``; ``a`` runs the default). Each process loads the two in the other order than the
    last, so that neither model always gets the threads and memory created first."""
    blocks, a_ms, b_ms = [], [], []
    per_process = max(1, -(-pairs // processes))
    for i in range(processes):
        spec = {
            "pair": {"a": str(a), "b": str(b), "b_graph": b_graph, "b_first": bool(i % 2)},
            "inputs": str(inputs),
            "threads": timing.threads,
            "providers": ["CPUExecutionProvider"],
            "calls": timing.runs_per_round,
            "blocks": per_process,
            "warmup": timing.warmup,
        }
        got = run_probe(spec, timing.timeout_s, f"paired probe of {a.name} and {b.name}")
        if "error" in got:
            raise RuntimeError(got["error"])
        blocks += got["block_ratios"]
        a_ms.append(got["a_ms"])
        b_ms.append(got["b_ms"])
    low, high = bootstrap_ci(blocks)
    return {
        "a": str(a),
        "b": str(b),
        "ratio": float(np.median(blocks)),
        "ci95": [low, high],
        "pairs": len(blocks),
        "processes": processes,
        "runs_per_probe": timing.runs_per_round,
        "ratios": blocks,
        "a_ms_median": float(np.median(a_ms)),
        "b_ms_median": float(np.median(b_ms)),
    }


def self_check(pair: dict) -> dict:
    """The identical-network pair: ok when its ratio is 1.00 within the tolerance."""
    ok = abs(pair["ratio"] - 1.0) <= SELF_CHECK_TOLERANCE
    verdict = (
        "ok" if ok else f"FAILED: {pair['ratio']:.3f} is outside 1.00 ± {SELF_CHECK_TOLERANCE}; this run's latency ratios cannot be trusted"
    )
    return {**pair, "ok": ok, "tolerance": SELF_CHECK_TOLERANCE, "verdict": verdict}

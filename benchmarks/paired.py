"""Latency ratios that hold up on a shared machine: paired, alternating A/B probes.

Why: two probes of the *same* network taken minutes apart differed by 20-40% on these machines
(ultralytics' FP32 export vs edgeslim's unpruned export, 2026-12-01: 4.10 vs 4.87 ms), more than the
effects reported. Interference comes in spells of seconds; a pair of probes taken back to back
shares a spell, so the ratio within a pair is far steadier than either time. Each ratio here is
the median over ``pairs`` pairs (the order alternating, A first then B first, so neither side
always runs on a warmer machine), each probe a fresh process (benchmarks.probe) of
``runs`` timed calls; the 95% interval is a seeded percentile bootstrap of that median. The
identical-network pair is kept as a self-check: its ratio must come out at 1.00 within
``SELF_CHECK_TOLERANCE``, or the run says that its ratios cannot be trusted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.measure import Timing, probe

SELF_CHECK_TOLERANCE = 0.03
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0


def _median_ms(result: dict) -> float:
    if "error" in result:
        raise RuntimeError(result["error"])
    return float(np.median(result["times_ms"]))


def bootstrap_ci(values: list[float]) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (seeded: the same ratios give the same interval)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    data = np.asarray(values)
    medians = np.median(rng.choice(data, size=(BOOTSTRAP_DRAWS, len(data)), replace=True), axis=1)
    tail = (1.0 - CONFIDENCE) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1.0 - tail))


def paired_ratio(a: Path, b: Path, inputs: Path, timing: Timing, pairs: int, b_graph: str = "all") -> dict:
    """Latency of ``b`` over ``a`` at batch 1: median of per-pair ratios, its 95% CI, both sides' medians
    (``b_graph``: ONNX Runtime graph optimization level for ``b``; ``a`` runs the default)."""
    ratios, a_ms, b_ms = [], [], []

    def side_a() -> float:
        return _median_ms(probe(a, inputs, 1, timing))

    def side_b() -> float:
        return _median_ms(probe(b, inputs, 1, timing, graph_optimization=b_graph))

    for i in range(pairs):
        if i % 2 == 0:
            ta, tb = side_a(), side_b()
        else:
            tb, ta = side_b(), side_a()
        ratios.append(tb / ta)
        a_ms.append(ta)
        b_ms.append(tb)
    low, high = bootstrap_ci(ratios)
    return {
        "a": str(a),
        "b": str(b),
        "ratio": float(np.median(ratios)),
        "ci95": [low, high],
        "pairs": pairs,
        "runs_per_probe": timing.runs_per_round,
        "ratios": ratios,
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

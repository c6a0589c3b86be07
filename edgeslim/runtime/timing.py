"""The project's two ways to time inference: a median over calls, and the paired ratio.

``interleaved_ratio`` is the one way edgeslim compares models' speed (pruning's latency budget,
the ranking of a target's formats, the benchmark's ratios). On a shared machine a model timed alone
and timed again minutes later differed by 20-40%; interference comes in spells far longer than one
call, so calling the models in turn (A B B A ...) exposes them to the same spells, and the ratio of
the medians within a block of calls is steady where either time is not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_timed_ms(fn) for _ in range(runs))


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
    ranked = paired_medians([a, b], calls, blocks, warmup)
    ratios = [blk[1] / blk[0] for blk in ranked.block_medians]
    return Ratio(statistics.median(ratios), ratios, ranked.medians_ms[0], ranked.medians_ms[1], calls)


@dataclass(frozen=True)
class Paired:
    """Several models timed in turn: each one's median over all calls, and per block."""

    medians_ms: list[float]
    block_medians: list[list[float]]  # [block][model]

    def ratios_to(self, reference: int) -> list[float]:
        """Each model's latency over ``reference``'s: the median of the per-block ratios."""
        return [statistics.median(blk[i] / blk[reference] for blk in self.block_medians) for i in range(len(self.medians_ms))]


def paired_medians(fns: Sequence[Callable[[], object]], calls: int, blocks: int, warmup: int) -> Paired:
    """Time every function in turn, the order rotating every call (A B C, B C A, ...), so that each
    sees the same spells of interference and none always runs first."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    n = len(fns)
    block_medians, pooled = [], [[] for _ in range(n)]  # type: ignore[var-annotated]
    for _ in range(blocks):
        times: list[list[float]] = [[] for _ in range(n)]
        for i in range(calls):
            for k in range(n):
                j = (i + k) % n if i % 2 == 0 else (i - k) % n
                times[j].append(_timed_ms(fns[j]))
        block_medians.append([statistics.median(t) for t in times])
        for j in range(n):
            pooled[j] += times[j]
    return Paired([statistics.median(t) for t in pooled], block_medians)

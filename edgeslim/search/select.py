"""Which candidate ships: screened on untrained latency, ranked by short finetunes, the fastest that
keeps its accuracy chosen. Pure: latencies and scores come in as values and a callable, so the logic
is tested on fixed figures and the step supplies measured ones.

Why this order of spending: weights do not change speed, so every candidate's latency is known
before any training, and those over the budget, or beaten on speed by one that is no less accurate
by construction, go for free. Training is the cost, so it goes to the fewest variants, in rungs of
successive halving: each rung's short finetune drops the variants that fall too far under the gate,
and passes on only the fastest share of the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from edgeslim.search.space import Candidate, Variant, at_least_as_accurate


@dataclass(frozen=True)
class Timed:
    """A candidate's untrained latency, and its ratio to the source's own export on its runtime."""

    candidate: Candidate
    latency_ms: float
    ratio: float


@dataclass
class Verdict:
    """What became of one variant (all its formats share its weights)."""

    variant: Variant
    fastest: Timed  # its fastest candidate that survived screening
    scores: list[float] = field(default_factory=list)  # mAP ratio to the reference after each rung it ran
    epochs: list[int] = field(default_factory=list)
    fate: str = ""

    def as_dict(self) -> dict:
        return {
            "variant": self.variant.name,
            **asdict(self.variant),
            "fastest_format": self.fastest.candidate.format,
            "latency_ms": self.fastest.latency_ms,
            "latency_ratio": self.fastest.ratio,
            "scores": self.scores,
            "epochs": self.epochs,
            "fate": self.fate,
        }


def screen(timed: list[Timed], budget: float | None) -> tuple[list[Timed], dict[str, str]]:
    """Candidates within ``budget`` (a latency ratio; None: any) that no other candidate dominates:
    no slower, and no less accurate by construction (space.at_least_as_accurate); with the reason
    each of the others went."""
    gone: dict[str, str] = {}
    within = []
    for t in timed:
        if budget is not None and t.ratio > budget:
            gone[t.candidate.name] = f"over the budget: {t.ratio:.3f}x > {budget:g}x"
        else:
            within.append(t)
    kept = []
    for t in within:
        better = next((o for o in within if o is not t and _dominates(o, t)), None)
        if better:
            gone[t.candidate.name] = f"dominated by {better.candidate.name} ({better.latency_ms:.2f} ms vs {t.latency_ms:.2f} ms)"
        else:
            kept.append(t)
    return kept, gone


def _dominates(a: Timed, b: Timed) -> bool:
    if a.latency_ms > b.latency_ms or not at_least_as_accurate(a.candidate, b.candidate):
        return False
    return a.latency_ms < b.latency_ms or not at_least_as_accurate(b.candidate, a.candidate)


@dataclass
class Halving:
    verdicts: list[Verdict]
    chosen: Verdict | None
    cut_by_clock: list[str]  # variants the time cap left untrained or unfinished


# Trains a rung's variants (fastest first) for ``epochs`` more each: their mAP ratios to the reference, in
# order, None for one the clock cut before it trained. One call per rung, so the step may fan them out.
RungScore = Callable[[list[Variant], int], list[float | None]]


def halve(kept: list[Timed], rungs: list[int], keep: float, floor: float, score: RungScore) -> Halving:
    """Successive halving over the variants of the screened ``kept`` candidates, fastest first.

    Each rung trains every variant still in for its epochs (``score``) and drops those under
    ``floor``; between rungs only the fastest ``keep`` share of the rest goes on. The choice is the
    fastest variant that cleared the floor on the last rung it ran; one the clock cut keeps the score
    of its last rung."""
    fastest: dict[Variant, Timed] = {}
    for t in sorted(kept, key=lambda t: t.latency_ms):
        fastest.setdefault(t.candidate.variant, t)
    verdicts = [Verdict(v, t) for v, t in fastest.items()]  # fastest first
    alive, cut = list(verdicts), []
    for i, epochs in enumerate(rungs):
        passed = []
        got = score([v.variant for v in alive], epochs) if alive else []
        for v, s in zip(alive, got, strict=True):
            if s is None:
                v.fate = f"cut by search.max_minutes before rung {i + 1}"
                cut.append(v.variant.name)
                continue
            v.scores.append(s)
            v.epochs.append(epochs)
            if v.scores[-1] >= floor:
                passed.append(v)
            else:
                v.fate = f"dropped at rung {i + 1}: {v.scores[-1]:.3f} of the reference after {sum(v.epochs)} epochs < {floor:.3f}"
        if i < len(rungs) - 1:
            n = max(1, math.ceil(len(passed) * keep))
            for v in passed[n:]:
                v.fate = f"not among the fastest {n} after rung {i + 1}"
            passed = passed[:n]
        alive = passed
    # a variant the clock cut keeps the score of the last rung it ran: it may still be the fastest that passed
    finalists = [v for v in verdicts if (v in alive or v.variant.name in cut) and v.scores and v.scores[-1] >= floor]
    if finalists:
        chosen = finalists[0]
        for v in finalists:
            note = f" (cut by the clock after rung {len(v.scores)})" if v.variant.name in cut else ""
            v.fate = (
                "chosen: the fastest that kept its accuracy" if v is chosen else f"runner-up, slower than {chosen.variant.name}"
            ) + note
        return Halving(verdicts, chosen, cut)
    # None cleared the floor: short finetunes under-rate what the full one recovers, so the best-scoring variant
    # goes on to the full finetune, and the gates, not the search, decide whether it ships.
    best = max((v for v in verdicts if v.scores), key=lambda v: v.scores[-1], default=None)
    if best is not None:
        best.fate = f"chosen: none cleared {floor:.3f}; the best-scoring goes on to the full finetune and the gates"
    return Halving(verdicts, best, cut)

"""Whether the source model looks converged, read from its own training history.

Why: a gate states the compressed model's mAP as a share of the source's. Against a source whose
training stopped while val fitness still rose (the embedded demo baseline: 40 epochs), finetuning
alone lifts that share, and the ratio flatters the compression. ultralytics stores its
``results.csv`` in every checkpoint it saves (``train_results``), so the run can say so itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeslim.config import ConvergenceParams

FITNESS = "metrics/mAP50-95(B)"  # ultralytics 8.4's detection fitness is mAP50-95 alone (metrics.Metric.fitness)


@dataclass(frozen=True)
class Convergence:
    epochs: int
    best: float  # the best val fitness of the whole run
    best_epoch: int  # 1-based
    gain: float  # best of the last ``window`` epochs minus the best before them
    window: int
    converged: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fitness_history(ckpt: dict[str, Any]) -> list[float] | None:
    """Val fitness per epoch from a checkpoint's ``train_results`` (None when it records none)."""
    results = ckpt.get("train_results") if isinstance(ckpt, dict) else None
    column = (results or {}).get(FITNESS)
    return [float(v) for v in column] if column else None


def convergence(fitness: list[float], params: ConvergenceParams) -> Convergence:
    """Converged unless the best fitness of the last ``params.window`` epochs beats everything before
    them by more than ``params.min_gain`` (a run shorter than two windows cannot show a plateau)."""
    n, w = len(fitness), params.window
    best = max(fitness)
    best_epoch = fitness.index(best) + 1
    if n < 2 * w:
        gain = best - fitness[0]
        converged = False
        why = f"only {n} epochs recorded, fewer than two {w}-epoch windows: no plateau can show"
    else:
        gain = max(fitness[-w:]) - max(fitness[:-w])
        converged = gain <= params.min_gain
        why = (
            f"best val mAP50-95 {best:.4f} at epoch {best_epoch} of {n}; the last {w} epochs added {gain:+.4f}"
            f" ({'within' if converged else 'more than'} {params.min_gain})"
        )
    return Convergence(n, best, best_epoch, gain, w, converged, why)

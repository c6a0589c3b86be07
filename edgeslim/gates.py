"""Quality gates: a run publishes nothing unless every gate passes.

Each gate carries its figure and threshold so a failure message can name all three.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeslim.config import FuseParams
from edgeslim.reparam.equivalence import Equivalence


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def map_gate(candidate_map: float, baseline_map: float, min_ratio: float) -> Gate:
    """Candidate mAP50-95 must reach ``min_ratio`` x baseline; a baseline of 0 cannot be kept."""
    ratio = candidate_map / baseline_map if baseline_map > 0 else 0.0
    return Gate(
        name="map_ratio",
        passed=baseline_map > 0 and ratio >= min_ratio,
        value=ratio,
        threshold=min_ratio,
        detail=f"INT8 mAP50-95 {candidate_map:.4f} is {ratio:.3f} x baseline {baseline_map:.4f}, needs >= {min_ratio}",
    )


def equivalence_gate(eq: Equivalence, fp: FuseParams, name: str = "equivalence") -> Gate:
    """Fused output must match the unfused one within both relative tolerances."""
    passed = eq.rel_l2 <= fp.max_rel_l2 and eq.rel_max_abs <= fp.max_rel_abs
    return Gate(
        name=name,
        passed=passed,
        value=eq.rel_l2,
        threshold=fp.max_rel_l2,
        detail=(
            f"fused vs unfused on {eq.n_images} val images: relative L2 {eq.rel_l2:.3e} (max {fp.max_rel_l2:.1e}), "
            f"max relative {eq.rel_max_abs:.3e} (max {fp.max_rel_abs:.1e})"
        ),
    )

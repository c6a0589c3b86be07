"""Quality gates: a run publishes nothing unless every gate passes.

Each gate carries its figure and threshold so a failure message can name all three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeslim.config import FuseParams
from edgeslim.evaluate.bootstrap import Interval
from edgeslim.reparam.equivalence import Equivalence


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str
    interval: dict | None = None  # a ratio gate's bootstrap interval (evaluate/bootstrap.Interval.as_dict)

    def as_dict(self) -> dict:
        return asdict(self)


def map_gate(
    candidate_map: float,
    reference_map: float,
    min_ratio: float,
    name: str = "map_ratio",
    what: str = "INT8 mAP50-95",
    reference: str = "baseline",
    interval: Interval | None = None,
    confidence: str = "point",
) -> Gate:
    """Candidate mAP50-95 must reach ``min_ratio`` x the reference's; a reference of 0 cannot be kept.

    ``confidence: lower`` asks it of the low end of the ratio's bootstrap ``interval`` instead of the
    ratio itself (no interval then means no pass: the noise is unknown)."""
    ratio = candidate_map / reference_map if reference_map > 0 else 0.0
    judged = ratio if confidence == "point" else (interval.low if interval else 0.0)
    if confidence == "point":
        rule = f"needs >= {min_ratio}"
    else:
        rule = f"its interval's low end {interval.low:.3f} needs >= {min_ratio}" if interval else f"no interval, needs one >= {min_ratio}"
    return Gate(
        name=name,
        passed=reference_map > 0 and judged >= min_ratio,
        value=ratio,
        threshold=min_ratio,
        detail=f"{what} {candidate_map:.4f} is {ratio:.3f} x {reference} {reference_map:.4f}, {rule}",  # the interval: gate_line
        interval=interval.as_dict() if interval else None,
    )


def _departure(eq: Equivalence) -> str:
    d = eq.departure
    if not d:
        return ""
    return f"; first departing module {d['module']} ({d['kind']}): relative L2 {d['rel_l2']:.3e} > tolerance {d['tolerance']:.1e}"


def _tolerance_gate(eq: Equivalence, name: str, what: str, max_rel_l2: float, max_rel_abs: float) -> Gate:
    worst = max(eq.parts, key=lambda k: eq.parts[k]["rel_l2"]) if eq.parts else None
    return Gate(
        name=name,
        passed=eq.within(max_rel_l2, max_rel_abs),
        value=eq.rel_l2,
        threshold=max_rel_l2,
        detail=(
            f"{what} on {eq.n_images} val images: relative L2 {eq.rel_l2:.3e} (max {max_rel_l2:.1e}), "
            f"max relative {eq.rel_max_abs:.3e} (max {max_rel_abs:.1e})" + (f", worst output {worst}" if worst else "") + _departure(eq)
        ),
    )


def equivalence_gate(eq: Equivalence, fp: FuseParams, name: str = "equivalence") -> Gate:
    """Fused (and stripped) output must match the source's main output within both relative tolerances."""
    return _tolerance_gate(eq, name, "fused vs unfused", fp.max_rel_l2, fp.max_rel_abs)


def onnx_equivalence_gate(eq: Equivalence, fp: FuseParams) -> Gate:
    """The exported ONNX FP32 model in ONNX Runtime must match the torch model it was exported from."""
    return equivalence_gate_named(eq, fp, "onnx_equivalence", "ONNX Runtime FP32 vs torch")


def equivalence_gate_named(eq: Equivalence, fp: FuseParams, name: str, what: str) -> Gate:
    """An FP32 export on a runtime (ONNX Runtime, OpenVINO) against the torch model, at the export tolerances."""
    return _tolerance_gate(eq, name, what, fp.onnx_max_rel_l2, fp.onnx_max_rel_abs)


def gate_line(g: Gate) -> str:
    """A gate as the report lists it: its detail, and a ratio gate's bootstrap interval (kept out of the
    detail, which error lines quote and which must stay short)."""
    i = g.interval
    return g.detail + (
        f" ({i['level']:.0%} CI {i['low']:.3f}–{i['high']:.3f}, {i['samples']} paired resamples of {i['images']} val images)" if i else ""
    )

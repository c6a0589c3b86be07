"""Accuracy-aware INT8: when the quantized model misses the mAP target, keep the most damaging layers float.

The shape of NNCF's ``quantize_with_accuracy_control``: quantize everything allowed and score it
with the validator that scores every artifact; if it falls short, rank the layers by what their
quantization costs (edgeslim.quantize.sensitivity) and re-quantize with the worst ``step`` layers
kept float, then the worst ``2*step``, ... until the target is met or the budget
(``max_float_layers``) is spent. The library stays pure: the caller passes ``score`` (path →
mAP50-95) and the target; a miss is not an error here, the flow's mAP gate turns it into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeslim.config import FallbackParams
from edgeslim.dag.fan import Fan, sequential
from edgeslim.quantize.ort_int8 import OrtQuantizer, Quantized
from edgeslim.quantize.sensitivity import LayerError, layers, rank_layers

PROBE_DIR = "sensitivity-probes"


@dataclass(frozen=True)
class Step:
    float_layers: list[str]  # kept float by the fallback at this step (quantize.keep_float's not repeated)
    float_nodes: int
    map50_95: float
    passed: bool


@dataclass
class QuantReport:
    path: Path
    keep_float_nodes: list[str]  # excluded by quantize.keep_float
    quantized_tensors: int
    calibration_images: int
    size_ratio: float  # INT8 file / FP32 file
    target_map50_95: float
    outcome: str
    steps: list[Step] = field(default_factory=list)
    ranking: list[LayerError] = field(default_factory=list)  # most damaging first, as far as the budget reaches
    float_nodes: list[str] = field(default_factory=list)  # kept float by the fallback in the final attempt

    def as_dict(self) -> dict:
        """Flat figures first (they become MLflow metrics), then the per-step detail."""
        return {
            "quantized_tensors": self.quantized_tensors,
            "calibration_images": self.calibration_images,
            "keep_float_nodes": len(self.keep_float_nodes),
            "fallback_float_layers": len(self.steps[-1].float_layers) if self.steps else 0,
            "fallback_float_nodes": len(self.float_nodes),
            "fallback_steps": max(0, len(self.steps) - 1),
            "size_ratio": round(self.size_ratio, 4),
            "target_map50_95": round(self.target_map50_95, 4),
            "outcome": self.outcome,
            "float_layers": self.steps[-1].float_layers if self.steps else [],
            "steps": [asdict(s) for s in self.steps],
            "ranking": [e.as_dict() for e in self.ranking],
        }


def budget(step: int, max_float_layers: int, available: int) -> list[int]:
    """Float-set sizes to try: step, 2*step, ... capped by the budget and by the layers there are."""
    limit = min(max_float_layers, available)
    return sorted({*range(step, limit, step), limit} - {0})


def quantize_with_fallback(
    quantizer: OrtQuantizer,
    out_path: Path,
    fp32_bytes: int,
    fb: FallbackParams,
    score: Callable[[Path], float] | None,
    target: float,
    ceiling: float,
    fan: Fan = sequential,
) -> QuantReport:
    """Quantize to ``out_path`` so that ``score(out_path) >= target`` if the budget allows.

    ``ceiling`` is the FP32 model's own score: below the target no float subset can pass, so the
    fallback is not tried (the flow's gate reports the miss). ``out_path`` holds the last attempt.
    Without ``score`` (a model nobody can score, e.g. an untrained benchmark reference) it
    quantizes once. ``fan`` runs the per-layer sensitivity probes (one re-quantization each).
    """
    steps: list[Step] = []
    if score is None:
        return _report(
            quantizer, quantizer.quantize(out_path), fp32_bytes, target, "quantized once, not scored (no accuracy target)", steps, []
        )

    def attempt(float_layers: list[LayerError]) -> Quantized:
        nodes = [n for layer in float_layers for n in layer.nodes]
        quantized = quantizer.quantize(out_path, nodes)
        value = score(out_path)
        steps.append(Step([layer.layer for layer in float_layers], len(nodes), value, value >= target))
        return quantized

    last = attempt([])
    ranking: list[LayerError] = []
    if steps[-1].passed:
        outcome = "INT8 meets the target with nothing kept float beyond quantize.keep_float"
    elif not fb.enabled:
        outcome = "INT8 misses the target; the fallback is disabled (quantize.fallback.enabled)"
    elif ceiling < target:
        outcome = f"INT8 misses the target; fallback not tried: the FP32 model's own mAP50-95 {ceiling:.4f} is below it"
    else:
        sizes = budget(fb.step, fb.max_float_layers, len(layers(quantizer.graph, quantizer.candidates())))
        if sizes:  # ranking costs one re-quantization per layer: only when the budget allows a step
            ranked = rank_layers(quantizer, quantizer.work_dir / PROBE_DIR, quantizer.calib_images[: fb.sensitivity_images], fb.conf, fan)
            ranking = ranked[: max(sizes)]
        for size in sizes:
            last = attempt(ranking[:size])
            if steps[-1].passed:
                break
        kept = len(steps[-1].float_layers)
        outcome = (
            f"INT8 meets the target with {kept} layer(s) kept float by the fallback"
            if steps[-1].passed
            else f"budget spent: {kept} layer(s) kept float (quantize.fallback.max_float_layers={fb.max_float_layers}) and INT8 still misses the target"
        )
    return _report(quantizer, last, fp32_bytes, target, outcome, steps, ranking)


def _report(
    quantizer: OrtQuantizer, last: Quantized, fp32_bytes: int, target: float, outcome: str, steps: list[Step], ranking: list[LayerError]
) -> QuantReport:
    return QuantReport(
        path=last.path,
        keep_float_nodes=list(quantizer.base_float),
        quantized_tensors=last.quantized_tensors,
        calibration_images=len(quantizer.calib_images),
        size_ratio=last.path.stat().st_size / fp32_bytes,
        target_map50_95=target,
        outcome=outcome,
        steps=steps,
        ranking=ranking,
        float_nodes=[n for n in last.float_nodes if n not in quantizer.base_float],
    )

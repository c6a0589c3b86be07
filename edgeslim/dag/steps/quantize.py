"""Step ``quantize``: ONNX Runtime static INT8 (QDQ) of the FP32 ONNX on the curated calibration set,
with the accuracy-aware fallback aimed at the mAP gate itself and scored by the one validator."""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome, numeric
from edgeslim.dag.source import run_size
from edgeslim.dag.step import FP32, StepInput
from edgeslim.dag.steps.calibrate import calibration_images
from edgeslim.dag.steps.evaluate import BASELINE, ONNX_FP32, scorer, stage_map
from edgeslim.dag.steps.gates import reference_map
from edgeslim.quantize.fallback import quantize_with_fallback
from edgeslim.quantize.ort_int8 import OrtQuantizer


def quantize(inp: StepInput, p: Params) -> Outcome:
    fp32 = inp.latest(FP32)
    images = calibration_images(inp.outcome("calibrate").artifact("manifest"))
    scored = inp.outcome("evaluate")
    target = p.gates.min_map_ratio * reference_map(list(scored.stages), p)[1]
    out = inp.layout.int8()
    quantizer = OrtQuantizer(fp32, images, run_size(p), p.quantize, inp.layout.quantize_work())
    score = scorer(inp, p)
    report = quantize_with_fallback(
        quantizer, out, fp32.stat().st_size, p.quantize.fallback, score.map50_95, target, stage_map(scored, ONNX_FP32, BASELINE), inp.fan
    )
    for i, s in enumerate(report.steps):
        print(
            f"INT8 attempt {i}: float {s.float_layers or 'nothing more'} ({s.float_nodes} nodes), {score.scored.label} {s.map50_95:.4f} (target {target:.4f})"
        )
    print(
        f"INT8: {report.outcome}; {len(report.keep_float_nodes)} decode/head nodes float by quantize.keep_float; file {100 * report.size_ratio:.1f}% of FP32"
    )
    section = {**report.as_dict(), "float_nodes": report.float_nodes}
    return Outcome(inp.step, artifacts={"int8": out}, metrics=numeric(section), details={"quantization": section})

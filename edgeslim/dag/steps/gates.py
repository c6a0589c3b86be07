"""Step ``gates``: every scored stage as a share of the reference's mAP (``gates.reference``: the
source as pulled, or the equal-budget control), and one mAP gate per format the target ships; the
stage table as DVC plots (stages.json, pareto.png).

Each format ``target.profiles[target.name]`` lists is gated on its own mAP, because a device may run
any of them (its agent picks by its own order). A format this machine could not build (a TensorRT
engine without a GPU) is left out with the reason; the rest, in the profile's order, is what ships.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.evaluate import BASELINE, CONTROL, ONNX_FP32, ONNX_INT8, TENSORRT
from edgeslim.gates import map_gate
from edgeslim.plots import pareto_plot, stage_points
from edgeslim.report import StageResult

# Shipped format → the stage that scores it, and its gate (``map_ratio`` stays the INT8 model's name).
FORMAT_STAGES = {
    "onnx-int8": (ONNX_INT8, "map_ratio"),
    "onnx-fp32": (ONNX_FP32, "map_ratio_fp32"),
    "tensorrt": (TENSORRT, "map_ratio_tensorrt"),
}
REFERENCE_STAGES = {"baseline": BASELINE, "control": CONTROL}


def reference_map(scored: list[StageResult], p: Params) -> tuple[str, float]:
    """The reference stage's name and mAP50-95 (0 when it was not scored)."""
    name = REFERENCE_STAGES[p.gates.reference]
    return name, next((s.map50_95 or 0.0 for s in scored if s.name == name), 0.0)


def gates(inp: StepInput, p: Params) -> Outcome:
    scored = [s for o in inp.outcomes.values() for s in o.stages]
    by_name = {s.name: s for s in scored}
    ref_name, ref = reference_map(scored, p)
    shipped, left_out, checks = [], {}, []
    for fmt in p.target.formats:
        stage, gate_name = FORMAT_STAGES[fmt]
        if stage not in by_name:
            left_out[fmt] = f"this run scored no {stage} artifact (not built here, or the source already is one)"
            continue
        gate = map_gate(by_name[stage].map50_95 or 0.0, ref, p.gates.min_map_ratio, gate_name, f"{stage} mAP50-95", ref_name)
        checks.append(gate)
        shipped.append({"format": fmt, "stage": stage, "artifact": by_name[stage].artifact, "gate": gate_name})
    if not shipped:
        checks.append(
            map_gate(0.0, ref, p.gates.min_map_ratio, "map_ratio", f"target {p.target.name}: no format it lists was built", ref_name)
        )
    gate_of = {s["stage"]: s["gate"] for s in shipped}
    stages = tuple(replace(s, map_ratio=(s.map50_95 or 0.0) / ref if ref > 0 else None, gate=gate_of.get(s.name, s.gate)) for s in scored)
    layout = inp.layout
    layout.stages_json().write_text(json.dumps([asdict(s) for s in stages], indent=2) + "\n")
    pareto_plot(stage_points(stages), f"accuracy vs latency (marker area = file size); mAP as a share of {ref_name}", layout.stages_png())
    vs = {f"{s.name}.map_ratio": s.map_ratio for s in stages if s.map_ratio is not None}
    both = {  # every stage against each reference that was scored (the control only when it was trained)
        name: {s.name: (s.map50_95 or 0.0) / base for s in stages}
        for name in REFERENCE_STAGES.values()
        if name in by_name and (base := by_name[name].map50_95)
    }
    return Outcome(
        inp.step,
        artifacts={"stages_json": layout.stages_json(), "pareto": layout.stages_png()},
        metrics=vs,
        details={
            "map_ratios": {s.name: s.map_ratio for s in stages},
            "reference": {"stage": ref_name, "map50_95": ref, "gates.reference": p.gates.reference},
            "map_ratios_vs": both,
            "target": {"name": p.target.name, "formats": p.target.formats, "shipped": shipped, "left_out": left_out},
        },
        gates=tuple(checks),
    )

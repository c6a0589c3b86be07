"""Step ``gates``: every scored stage as a share of the source's mAP, and the ``map_ratio`` gate on
the INT8 model; the stage table as DVC plots (stages.json, pareto.png)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.evaluate import BASELINE, ONNX_INT8
from edgeslim.gates import map_gate
from edgeslim.plots import pareto_plot, stage_points


def gates(inp: StepInput, p: Params) -> Outcome:
    scored = [s for o in inp.outcomes.values() for s in o.stages]
    base = next((s.map50_95 or 0.0 for s in scored if s.name == BASELINE), 0.0)
    int8 = next((s.map50_95 or 0.0 for s in scored if s.name == ONNX_INT8), 0.0)
    stages = tuple(replace(s, map_ratio=(s.map50_95 or 0.0) / base if base > 0 else None) for s in scored)
    gate = map_gate(int8, base, p.gates.min_map_ratio)
    layout = inp.layout
    layout.stages_json().write_text(json.dumps([asdict(s) for s in stages], indent=2) + "\n")
    pareto_plot(stage_points(stages), "accuracy vs latency (marker area = file size)", layout.stages_png())
    ratios = {f"{s.name}.map_ratio": s.map_ratio for s in stages if s.map_ratio is not None}
    return Outcome(
        inp.step,
        artifacts={"stages_json": layout.stages_json(), "pareto": layout.stages_png()},
        metrics=ratios,
        details={"map_ratios": {s.name: s.map_ratio for s in stages}},
        gates=(gate,),
    )

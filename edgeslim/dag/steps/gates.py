"""Step ``gates``: every scored stage as a share of the reference's mAP (``gates.reference``: the
source as pulled, or the equal-budget control), and one mAP gate per candidate format of the target;
the stage table as DVC plots (stages.json, pareto.png).

Each format the target's profile lists is a candidate, gated on its own mAP, because a device may
run any of them. A candidate that fails its gate, or that this machine could not build (a TensorRT
engine without a GPU, bf16 without AMX), is left out with the reason; the run fails only when no
candidate is left. What ships is ordered fastest first where the latencies mean something for the
target (the machine matches its profile, or ``target.measure``): the gated formats timed in paired
rounds on one image. Elsewhere the profile's order stands. report.json says which and why.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.source import run_size
from edgeslim.dag.step import StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.dag.steps.evaluate import BASELINE, CONTROL, ONNX_FP32, ONNX_INT8, TENSORRT, val_sample
from edgeslim.evaluate.bootstrap import Interval, PerImage, ratio_intervals
from edgeslim.gates import map_gate
from edgeslim.plots import map_ylabel, pareto_plot, stage_points
from edgeslim.report import StageResult, metric_label
from edgeslim.runtime.cpu import machine_profile, notable_flags
from edgeslim.runtime.formats import FORMATS
from edgeslim.runtime.session import open_session, runner
from edgeslim.runtime.timing import Paired, paired_medians

# Shipped format → the stage that scores it, and its gate (``map_ratio`` stays the INT8 model's name).
FORMAT_STAGES = {
    "onnx-int8": (ONNX_INT8, "map_ratio"),
    "onnx-fp32": (ONNX_FP32, "map_ratio_fp32"),
    "openvino-fp32": ("openvino-fp32", "map_ratio_openvino_fp32"),
    "openvino-bf16": ("openvino-bf16", "map_ratio_openvino_bf16"),
    "openvino-int8": ("openvino-int8", "map_ratio_openvino_int8"),
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
    label = metric_label(inp.outcome("evaluate").details)
    intervals = _intervals(scored, ref_name, p)
    shipped, left_out, checks, failed = [], {}, [], []
    why_not_built = {**inp.outcome("openvino").details.get("openvino", {}).get("left_out", {})}
    if "skipped" in inp.outcome("tensorrt").details.get("tensorrt", {}):
        why_not_built["tensorrt"] = inp.outcome("tensorrt").details["tensorrt"]["skipped"]
    for fmt in p.target.formats:
        stage, gate_name = FORMAT_STAGES[fmt]
        if stage not in by_name:
            left_out[fmt] = why_not_built.get(fmt, f"this run scored no {stage} artifact (not built here, or the source already is one)")
            continue
        gate = map_gate(
            by_name[stage].map50_95 or 0.0, ref, p.gates.min_map_ratio, gate_name, f"{stage} {label}", ref_name,
            intervals.get(stage), p.gates.confidence,
        )  # fmt: skip
        if not gate.passed:
            left_out[fmt] = f"failed its gate: {gate.detail}"
            failed.append(gate)
            continue
        checks.append(gate)
        shipped.append(
            {"format": fmt, "stage": stage, "artifact": by_name[stage].artifact, "gate": gate_name, "map50_95": by_name[stage].map50_95}
        )
    if not shipped:  # nothing to ship: the run fails, on every candidate's own gate
        checks += failed or [
            map_gate(0.0, ref, p.gates.min_map_ratio, "map_ratio", f"target {p.target.profile}: no format it lists was built", ref_name)
        ]
    order = _order(inp, p, shipped)
    gate_of = {str(s["stage"]): str(s["gate"]) for s in shipped}
    stages = tuple(
        replace(
            s,
            map_ratio=(s.map50_95 or 0.0) / ref if ref > 0 else None,
            map_ratio_ci=(i.low, i.high) if (i := intervals.get(s.name)) else None,
            gate=gate_of.get(s.name, s.gate),
        )
        for s in scored
    )
    layout = inp.layout
    layout.stages_json().write_text(json.dumps([asdict(s) for s in stages], indent=2) + "\n")
    pareto_plot(
        stage_points(stages),
        f"accuracy vs latency (marker area = file size); {label} as a share of {ref_name}",
        layout.stages_png(),
        ylabel=map_ylabel(label),
    )
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
            "map_ratio_intervals": {name: i.as_dict() for name, i in intervals.items()},
            "gates.confidence": p.gates.confidence,
            "map_ratios_vs": both,
            "target": {
                "name": p.target.name,
                "profile": p.target.profile,
                "formats": p.target.formats,
                "shipped": order["shipped"],
                "left_out": left_out,
                "preferred": order["shipped"][0]["format"] if order["shipped"] else None,
                "order": order["why"],
                "cpu_flags": notable_flags(),
            },
        },
        gates=tuple(checks),
    )


def _intervals(scored: list[StageResult], ref_name: str, p: Params) -> dict[str, Interval]:
    """Each scored stage's mAP ratio interval against the reference (paired bootstrap over the val
    images); empty when the reference's per-image matches were not recorded."""
    ref = next((s for s in scored if s.name == ref_name and s.per_image), None)
    if ref is None or ref.per_image is None:
        return {}
    others = {s.name: PerImage.load(Path(s.per_image)) for s in scored if s.per_image and s.name != ref_name}
    found = ratio_intervals(others, PerImage.load(Path(ref.per_image)), p.gates.bootstrap)
    for name, i in found.items():
        print(f"{name}: mAP ratio to {ref_name} {i.text()}")
    return found


def time_formats(inp: StepInput, p: Params, shipped: list[dict]) -> Paired:
    """Each shipped artifact on its runtime at its precision, called in turn on one val image."""
    sample = val_sample(dataset_info(inp.outcome("dataset")), run_size(p))
    calls = [runner(open_session(Path(s["artifact"]), FORMATS[s["format"]], p.evaluate.threads), sample) for s in shipped]
    return paired_medians(calls, p.evaluate.latency_runs, p.target.rounds, p.evaluate.latency_warmup)


def _order(inp: StepInput, p: Params, shipped: list[dict]) -> dict:
    """``shipped`` fastest first, timed here in paired rounds, where that means something for the
    target; else the profile's order, and why."""
    here = machine_profile()
    if len(shipped) < 2 or not (p.target.measure or here == p.target.profile):
        why = f"profile order: this machine is {here}, the target is {p.target.profile} (target.measure is false)"
        return {"shipped": shipped, "why": why if len(shipped) > 1 else "one format shipped"}
    timed = time_formats(inp, p, shipped)
    ratios = timed.ratios_to(0)
    measured = [{**s, "latency_ms": ms, "ratio_to_profile_first": r} for s, ms, r in zip(shipped, timed.medians_ms, ratios)]
    measured.sort(key=lambda s: s["ratio_to_profile_first"])
    for s in measured:
        print(f"{s['format']}: {s['latency_ms']:.2f} ms ({s['ratio_to_profile_first']:.3f}x {shipped[0]['format']}, paired rounds)")
    return {"shipped": measured, "why": f"measured here ({here}, matching the target {p.target.profile}), paired rounds, fastest first"}

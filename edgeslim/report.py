"""The run report: one table people read (stage · mAP · % of baseline · size · latency · gate)
and one report.json machines read, built from the same data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeslim.gates import Gate, gate_line


@dataclass
class StageResult:
    name: str
    artifact: str
    map50_95: float | None = None
    map50: float | None = None
    box_map50_95: float | None = None  # the boxes' mAP beside a mask or pose map50_95 (None: map50_95 is the box mAP)
    map_ratio: float | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    gate: str | None = None  # name of the gate this stage's figure feeds
    macs: int | None = None  # multiply-accumulates per image (ONNX: those of the model it was exported from)
    params: int | None = None
    per_image: str | None = None  # the validator's per-image matches (evaluate/bootstrap.py), for the ratio's interval
    map_ratio_ci: tuple[float, float] | None = None  # the bootstrap interval of map_ratio (gates.bootstrap)


@dataclass
class Report:
    model: str
    source_version: str
    stages: list[StageResult] = field(default_factory=list)
    gates: dict[str, Gate] = field(default_factory=dict)
    published: dict | None = None
    details: dict = field(default_factory=dict)  # per-stage reports (fusion list, quantization...)
    timings: dict[str, float] = field(default_factory=dict)  # step → wall seconds, task overhead included

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start

    @property
    def passed(self) -> bool:
        return bool(self.gates) and all(g.passed for g in self.gates.values())

    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates.values() if not g.passed]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "source_version": self.source_version,
            "stages": [asdict(s) for s in self.stages],
            "gates": {
                k: {"passed": g.passed, "value": g.value, "threshold": g.threshold, "detail": g.detail, "interval": g.interval}
                for k, g in self.gates.items()
            },
            "published": self.published,
            "details": self.details,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def write_json(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def markdown(self) -> str:
        def fmt(v: float | None, spec: str) -> str:
            return "—" if v is None else format(v, spec)

        reference = self.details.get("reference", {}).get("stage", "baseline")
        ci_header = " (bootstrap CI)" if any(s.map_ratio_ci for s in self.stages) else ""
        label = metric_label(self.details)
        boxes = any(s.box_map50_95 is not None for s in self.stages)
        rows = [
            f"| stage | {label} | mAP50 |{' box mAP50-95 |' if boxes else ''} % of {reference}{ci_header} | size | MMACs | params M "
            "| CPU latency ms | gate |",
            "|---|---|---|---|---|---|---|---|---|" + ("---|" if boxes else ""),
        ]
        for s in self.stages:
            gate = self.gates.get(s.gate) if s.gate else None
            verdict = "—" if gate is None else ("pass" if gate.passed else "**FAIL**")
            size = "—" if s.size_bytes is None else f"{s.size_bytes / 1024:.0f} KiB"
            pct = "—" if s.map_ratio is None else f"{100 * s.map_ratio:.1f}%" + _ci(s.map_ratio_ci)
            macs = fmt(None if s.macs is None else s.macs / 1e6, ".1f")
            params = fmt(None if s.params is None else s.params / 1e6, ".3f")
            box = f" {fmt(s.box_map50_95, '.4f')} |" if boxes else ""
            rows.append(
                f"| {s.name} | {fmt(s.map50_95, '.4f')} | {fmt(s.map50, '.4f')} |{box}"
                f" {pct} | {size} | {macs} | {params} | {fmt(s.latency_ms, '.2f')} | {verdict} |"
            )
        lines = [
            f"### edgeslim compress: `{self.model}` version {self.source_version}",
            "",
            *_source_lines(self.details),
            *rows,
            "",
            "**Gates**",
            "",
        ]
        lines += [f"- {'PASS' if g.passed else 'FAIL'} `{g.name}`: {gate_line(g)}" for g in self.gates.values()]
        lines += _search_lines(self.details)
        lines += _shipped_lines(self.details)
        lines += _skipped_lines(self.details)
        lines += _fusion_lines(self.details)
        lines += _quantization_lines(self.details)
        pub = self.published
        lines += [
            "",
            f"**Published**: `{pub['model']}` version {pub['version']} @ `{pub['alias']}`"
            if pub
            else "**Published**: nothing (registry unchanged)",
        ]
        return "\n".join(lines) + "\n"


def metric_label(details: dict) -> str:
    """What the run's mAP figures are (``mask mAP50-95``), from the evaluate step's ``metric`` detail;
    plain ``mAP50-95`` for a report of a run that scored nothing."""
    return details.get("metric", {}).get("label", "mAP50-95")


def _ci(ci: tuple[float, float] | list[float] | None) -> str:
    """A ratio's bootstrap interval in the stage table: `` (93.1–99.0)``."""
    return "" if ci is None else f" ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})"


def _source_lines(details: dict) -> list[str]:
    """Where the model came from and the image size it was compressed at (and why that size)."""
    s = details.get("source")
    if not s:
        return []
    why = "compress.imgsz" if s["imgsz_from"] == "params" else ("its input size" if s.get("format") == "onnx" else "its training size")
    kind = "an ONNX model" if s.get("format") == "onnx" else "a PyTorch checkpoint"
    lines = [f"Source `{s['reference']}` ({kind}), compressed at {s['imgsz']} px ({why}; stride {s['stride']}).", ""]
    size = details.get("input")
    if size and size["input_size"] != size["source_size"]:
        lines[-1:] = [
            f"The compressed model runs at **{size['input_size']} px** (compress.input_size, or the search's choice): it was "
            f"finetuned, exported, calibrated and scored at that size, the source at its own {size['source_size']} px.",
            "",
        ]
    c = s.get("convergence")
    if c is None:
        return [*lines, "Source convergence: unknown (the file records no training history).", ""]
    if c["converged"]:
        return [*lines, f"Source looks converged: {c['detail']}.", ""]
    return [
        *lines,
        f"**Source not converged**: {c['detail']}. Its val mAP was still rising, so ratios against it flatter the compressed "
        "model (finetuning alone gains); judge against a converged reference or the equal-budget control (evaluate.control).",
        "",
    ]


def _search_lines(details: dict) -> list[str]:
    """What the search explored, what it dropped and why, and what it chose (the Pareto table)."""
    s = details.get("search")
    if not s:
        return []
    chosen = s.get("chosen")
    head = (
        f"chose `{chosen['variant']}` ({chosen['fastest_format']} at {chosen['latency_ratio']:.3f}x the source's own export)"
        if chosen
        else "chose nothing"
    )
    lines = [
        "",
        f"**Search** ({s['goal']}; floor {s['floor']:.3f} of the source's mAP {s['reference_map50_95']:.4f} after the short "
        f"finetunes; {s['wall_s']:.0f} s): {head}",
        "",
        "| candidate | latency ms (untrained) | x source's export | mAP ratio (short finetune) | status |",
        "|---|---|---|---|---|",
    ]
    for c in s["candidates"]:
        ratio = "" if c["map_ratio"] is None else f"{c['map_ratio']:.3f}"
        lines.append(f"| `{c['candidate']}` | {c['latency_ms']:.2f} | {c['ratio']:.3f} | {ratio} | {c['status']} |")
    lines += [f"- not built `{name}`: {why}" for name, why in s.get("unbuilt", {}).items()]
    lines += [f"- not timed `{fmt}`: {why}" for fmt, why in s.get("untimed_formats", {}).items()]
    if s.get("cut_by_max_minutes"):
        lines.append(f"- cut by search.max_minutes: {', '.join(s['cut_by_max_minutes'])}")
    lines.append(f"- not searched: {s['not_searched']}")
    return lines


def _shipped_lines(details: dict) -> list[str]:
    """What the edge version holds for the target, best first, and the control's view when it was trained."""
    target = details.get("target")
    if not target:
        return []
    formats = ", ".join(f"`{s['format']}`" for s in target["shipped"]) or "nothing"
    profile = target.get("profile", target["name"])
    lines = ["", f"**Target** `{profile}`: ships {formats} (preferred first; {target.get('order', 'profile order')})"]
    if target["shipped"]:
        lines += ["", f"| format | {metric_label(details)} | latency (ms, paired) | x profile's first |", "|---|---|---|---|"]
        maps = {s.get("stage"): s.get("map50_95") for s in target["shipped"]}
        for s in target["shipped"]:
            m = maps.get(s["stage"])
            lat, ratio = s.get("latency_ms"), s.get("ratio_to_profile_first")
            lines.append(
                f"| `{s['format']}` | {'' if m is None else f'{m:.4f}'} | {'' if lat is None else f'{lat:.2f}'} | {'' if ratio is None else f'{ratio:.3f}'} |"
            )
        lines.append("")
    lines += [f"- left out `{fmt}`: {why}" for fmt, why in target["left_out"].items()]
    vs_control = details.get("map_ratios_vs", {}).get("control")
    if vs_control and details.get("reference", {}).get("stage") != "control":
        lines.append("- against the equal-budget control: " + ", ".join(f"{name} {100 * r:.1f}%" for name, r in vs_control.items()))
    return lines


def _skipped_lines(details: dict) -> list[str]:
    """The steps that did not run, each with its reason (disabled by params, an ONNX source)."""
    skipped = details.get("skipped_steps") or {}
    return ["", "**Skipped steps**:", *(f"- `{name}`: {why}" for name, why in skipped.items())] if skipped else []


def _fusion_lines(details: dict) -> list[str]:
    """What fusion did, what it could not fuse, and what stripping a dual-head source removed."""
    f = details.get("fusion")
    if not f:
        return []
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(f.get("fused_kinds", {}).items()))
    lines = ["", f"**Fusion**: {len(f['fused'])} modules fused ({kinds}); BatchNorm layers {f['bn_before']} -> {f['bn_after']}"]
    if f["not_fused"]:
        lines.append(f"- not fused: {', '.join(f'{n} ({k})' for n, k in f['not_fused'].items())}")
    if "strip" in f:
        s = f["strip"]
        lines.append(
            f"- auxiliary branch stripped: {len(s['removed'])} layers removed, parameters {s['params_before']} -> {s['params_after']}"
        )
    return lines


def _quantization_lines(details: dict) -> list[str]:
    """The INT8 outcome, each fallback attempt (layers kept float, mAP) and the TensorRT step's outcome."""
    lines = []
    q = details.get("quantization")
    if q:
        lines += ["", f"**INT8**: {q['outcome']}; file {100 * q['size_ratio']:.1f}% of FP32"]
        if len(q["steps"]) > 1:
            lines.append("")
            for i, step in enumerate(q["steps"]):
                layers = ", ".join(f"`{layer}`" for layer in step["float_layers"]) or "nothing more"
                verdict = "meets" if step["passed"] else "misses"
                lines.append(
                    f"- attempt {i}: float {layers} ({step['float_nodes']} nodes) → {metric_label(details)} {step['map50_95']:.4f} {verdict} {q['target_map50_95']:.4f}"
                )
    trt = details.get("tensorrt")
    if trt:
        lines += ["", f"**TensorRT**: {'skipped: ' + trt['skipped'] if 'skipped' in trt else trt['precision']}"]
    return lines

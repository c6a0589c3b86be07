"""What each lever buys, at equal footing: the ablation, the headline and the ONNX Runtime settings.

- Ablation (the main subject): prune only (MACs target, depth caps, no teacher), then + distillation
  (same MACs cut), then + latency-driven pruning (the latency policy and budget mode at
  ``benchmark.latency_budget``, caps ``benchmark.latency_caps``), then + INT8 of that model. Each row's latency is a paired ratio to
  ultralytics' FP32 export (benchmarks.paired); each mAP is stated against the converged reference
  (the subject's source) and the equal-budget control. A last row times the channel floor: the same
  architecture with every layer at its fewest channels, the most channel pruning could buy.
- Frontier (the main subject): the run's own recipe at each ``benchmark.frontier_macs`` target too,
  each row gated as the flow would gate it, and the fastest row that passed.
- Headline (each subject): the artifact the target ships first, under the run's params, against
  ultralytics' FP32 export, with the identical-network self-check.
- Graph settings: the unpruned FP32 export under each ONNX Runtime graph optimization level, and
  exported without onnxslim, each as a paired ratio to the default (all optimizations, slimmed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ultralytics.nn.tasks import DetectionModel

from benchmarks import exports
from benchmarks.library_run import LibraryRun, run_library_steps
from benchmarks.measure import Timing
from benchmarks.paired import paired_ratio, self_check
from benchmarks.subjects import Subject
from edgeslim.config import BenchmarkParams, Params, load_params
from edgeslim.dag.steps.evaluate import BASELINE, CONTROL
from edgeslim.dag.steps.gates import FORMAT_STAGES
from edgeslim.errors import EdgeslimError
from edgeslim.export.onnx_export import export_onnx
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.checkpoint import class_names, load_checkpoint, save_checkpoint

# A fixed recipe at a MACs target: the rows compare recipes, so the search (which would choose its own) is off.
MACS_MODE = ("prune.policy=depth", "prune.target_latency_ratio=null", "search.enabled=false")


def variants(b: BenchmarkParams) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(row, overrides) of the ablation, each on top of the run's params."""
    shallow, deep = b.latency_caps
    latency = (
        "prune.policy=latency",
        f"prune.target_latency_ratio={b.latency_budget}",
        f"prune.ratio_shallow={shallow}",
        f"prune.ratio_deep={deep}",
    )
    return (
        ("prune only", ("prune.distill.enabled=false", *MACS_MODE)),
        ("+ distillation", ("prune.distill.enabled=true", *MACS_MODE)),
        ("+ latency-driven", ("prune.distill.enabled=true", *latency)),
    )


def frontier_variants(b: BenchmarkParams) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(row, overrides): the run's own recipe at each of ``benchmark.frontier_macs``, where the
    accuracy the gate asks for meets the latency a cut buys."""
    return tuple((f"recipe at {cut:.0%} MACs target", (f"prune.target_macs_reduction={cut}", *MACS_MODE)) for cut in b.frontier_macs)


@dataclass(frozen=True)
class Context:
    """What every row of one subject is measured with: paired against ultralytics' FP32 export of it."""

    reference_fp32: Path  # ultralytics' FP32 export: every latency ratio is against it
    inputs: Path
    timing: Timing
    pairs: int
    processes: int
    subject: Subject

    def ratio(self, a: Path, b: Path, b_graph: str = "all") -> dict:
        """``b``'s latency over ``a``'s by the paired method (benchmarks.paired)."""
        return paired_ratio(a, b, self.inputs, self.timing, self.pairs, self.processes, b_graph)


def _map(run: LibraryRun, stage: str) -> float | None:
    s = run.stages.get(stage)
    return s.map50_95 if s else None


def _share(value: float | None, of: float | None) -> float | None:
    return value / of if value is not None and of else None


def _row(name: str, run: LibraryRun, stage: str, path: Path, ctx: Context, control: float | None) -> dict:
    m = _map(run, stage)
    latency = ctx.ratio(ctx.reference_fp32, path)
    return {
        "gates_passed": all(run.gates.values()),
        "size_bytes": path.stat().st_size,
        "row": name,
        "artifact": str(path),
        "macs_reduction": run.pruning.get("macs_reduction"),
        "latency_ratio_vs_ultralytics_fp32": latency["ratio"],
        "latency_ratio_ci": latency["ci95"],
        "latency_ms": latency["b_ms_median"],
        "map50_95": m,
        "map_ratio_vs_converged": _share(m, _map(run, BASELINE)),
        "map_ratio_vs_control": _share(m, control),
        "budget_checks": run.pruning.get("latency", {}).get("budget_checks"),
    }


def ablation_runs(
    params_file: Path,
    overrides: tuple[str, ...],
    subject: Subject,
    default: tuple[Params, LibraryRun],
    work: Path,
    rows: tuple[tuple[str, tuple[str, ...]], ...],
) -> list[tuple[str, LibraryRun | str]]:
    """Train each variant (cached); a variant whose budget cannot be met is kept with the reason. A
    variant that is the run's own params (``default``, trained with the control) reuses that run."""
    runs: list[tuple[str, LibraryRun | str]] = []
    for name, extra in rows:
        if load_params(params_file, [*overrides, *extra, "evaluate.control=true"]) == default[0]:
            runs.append((name, default[1]))
            continue
        p = load_params(params_file, [*overrides, *extra, "evaluate.control=false"])
        folder = work / name.replace("+ ", "plus-").replace("%", "pct").replace(" ", "-")
        try:
            runs.append((name, run_library_steps(p, subject.weights, subject.imgsz, folder, True)))
        except EdgeslimError as exc:  # an unmeetable budget is a finding: the row says why
            runs.append((name, str(exc)))
    return runs


def channel_floor(p: Params, ctx: Context, work: Path) -> dict:
    """The subject's architecture with every layer at ``benchmark.floor_width`` of its channels (8,
    make_divisible's minimum, except the head's own floors), untrained: what is left when channel
    pruning has removed all it could. Its latency is the most channel pruning can buy at this depth,
    input size and runtime; the rest is per-node cost that only fewer nodes remove."""
    recipe = ctx.subject.recipe
    name = f"floor: every layer at {p.benchmark.floor_width:g} of its width (untrained)"
    if recipe is None:
        return {"row": name, "absent": "the subject's architecture is not known (--model)"}
    floor = recipe.model_copy(update={"scale": [recipe.scale[0], p.benchmark.floor_width, recipe.scale[2]]})
    names = class_names(load_checkpoint(ctx.subject.weights)[1])
    model = DetectionModel(str(write_arch_yaml(floor, len(names), work)), verbose=False).eval()
    model.names = dict(enumerate(names))
    ckpt = save_checkpoint(model, {"train_args": {"imgsz": ctx.subject.imgsz}}, work / "floor.pt")
    onnx = export_onnx(ckpt, ctx.subject.imgsz, p.export.opset, work / "floor.onnx")
    latency = ctx.ratio(ctx.reference_fp32, onnx)
    return {
        "row": name,
        "artifact": str(onnx),
        "macs_reduction": None,
        "latency_ratio_vs_ultralytics_fp32": latency["ratio"],
        "latency_ratio_ci": latency["ci95"],
        "latency_ms": latency["b_ms_median"],
        "map50_95": None,
        "map_ratio_vs_converged": None,
        "map_ratio_vs_control": None,
        "params": sum(t.numel() for t in model.parameters()),
    }


def ablation_rows(runs: list[tuple[str, LibraryRun | str]], default: LibraryRun, ctx: Context) -> list[dict]:
    """One measured row per variant, then the last variant's INT8; mAP against converged and control."""
    control = _map(default, CONTROL)
    rows, last = [], None
    for name, run in runs:
        if isinstance(run, str):
            rows.append({"row": name, "absent": run})
            continue
        rows.append(_row(name, run, "onnx-fp32", run.fp32, ctx, control))
        last = run
    if last is not None:
        rows.append(_row("+ INT8", last, "onnx-int8", last.int8, ctx, control))
    return rows


def frontier_rows(runs: list[tuple[str, LibraryRun | str]], default: LibraryRun, ctx: Context) -> dict:
    """The recipe's FP32 export under the run's params and at each other MACs target, with whether
    its run passed every gate, and the fastest row that did: where the cut would have to be set."""
    control = _map(default, CONTROL)
    rows = [
        {"row": name, "absent": run} if isinstance(run, str) else _row(name, run, "onnx-fp32", run.fp32, ctx, control)
        for name, run in [("the run's own params", default), *runs]
    ]
    passing = [r for r in rows if r.get("gates_passed")]
    fastest = min(passing, key=lambda r: r["latency_ratio_vs_ultralytics_fp32"])["row"] if passing else None
    return {"rows": rows, "fastest_passing": fastest}


def headline(p: Params, run: LibraryRun, ctx: Context) -> dict:
    """The target's shipped artifact against ultralytics' FP32 export, with the self-check pair (the
    issue's: the same network from two exporters) and the same file against itself (the method's
    own noise, apart from any real difference between the two exports)."""
    shipped = run.shipped_artifact()
    check = {**self_check(ctx.ratio(ctx.reference_fp32, run.fp32_unpruned)), "same_file": ctx.ratio(ctx.reference_fp32, ctx.reference_fp32)}
    if shipped is None:
        return {
            "subject": ctx.subject.label,
            "target": p.target.profile,
            "artifact": None,
            "absent": f"nothing passed its gates: {run.gates}",
            "self_check": check,
        }
    fmt, path = shipped
    m = _map(run, FORMAT_STAGES[fmt][0])
    latency = ctx.ratio(ctx.reference_fp32, path)
    return {
        "subject": ctx.subject.label,
        "target": p.target.profile,
        "artifact": fmt,
        "latency_ratio_vs_ultralytics_fp32": latency["ratio"],
        "latency_ratio_ci": latency["ci95"],
        "self_check_ratio": check["ratio"],
        "map50_95": m,
        "map_ratio_vs_converged": _share(m, _map(run, BASELINE)),
        "map_ratio_vs_control": _share(m, _map(run, CONTROL)),
        "latency": latency,
        "self_check": check,
        "file": str(path),
    }


def graph_settings(p: Params, run: LibraryRun, subject: Subject, ctx: Context, work: Path) -> list[dict]:
    """Which ONNX Runtime levels and export options change latency (paired, against the default)."""
    base = run.fp32_unpruned
    rows = [
        {"setting": f"graph_optimization_level={level}", **ctx.ratio(base, base, b_graph=level)}
        for level in ("extended", "basic", "disabled")
    ]
    unslimmed = exports.unslimmed_fp32(run.fused, subject.imgsz, p, work / "unslimmed")
    rows.append({"setting": "exported without onnxslim (simplify=False)", **ctx.ratio(base, unslimmed)})
    dynamic = exports.edgeslim_dynamic_fp32(run.fused, subject.imgsz, p, work / "dynamic-shapes")
    rows.append({"setting": "dynamic batch/height/width (dynamic=True)", **ctx.ratio(base, dynamic)})
    return rows

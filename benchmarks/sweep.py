"""``python -m benchmarks.sweep``: how much of the converged reference's mAP each MACs cut keeps.

Why: on the converged reference the default cut (``prune.target_macs_reduction``) keeps less than the
gate's 95% of its mAP50-95, so a user whose model is trained to the end needs to know which cut
does, and what it costs in speed. The sweep runs the default recipe (distillation on, depth caps) at
each ``benchmark.macs_sweep`` level on the converged reference, and states each pruned FP32 ONNX's
mAP50-95 against the converged reference and against the equal-budget control of the benchmark's
default run, with its latency as a paired ratio to ultralytics' FP32 export (benchmarks.paired).

The compress runs are cached like the benchmark's (benchmarks.library_run), so a second invocation
only measures: train first (even on a busy machine, mAP does not care), then rerun on a quiet one
for the latency column. Run ``python -m benchmarks.run`` first: the sweep takes its converged
reference and its control from that run's cache and fails, saying so, without them.
Writes benchmarks/results/sweep.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgeslim.config import DEFAULT_PARAMS, load_params
from edgeslim.errors import EdgeslimError

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _lines(result: dict) -> list[str]:
    lines = [
        f"# MACs sweep: {result['subject']}",
        "",
        f"The default recipe (distilled, depth caps, {result['finetune_epochs']} finetune epochs) at each MACs cut. "
        "mAP50-95 of the pruned FP32 ONNX on the held-out val split, as a share of the converged reference and "
        f"of the equal-budget control ({result['control_map50_95']:.4f}); latency paired against ultralytics' FP32 "
        f"export as in benchmarks/results/default.md. Gate: {result['min_map_ratio']} of the reference.",
        "",
        "| MACs target | MACs cut | latency × ultralytics FP32 | 95% CI | mAP50-95 | × converged | × control | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        share = r["map_ratio_vs_converged"]
        gate = "—" if share is None else ("passes" if share >= result["min_map_ratio"] else "fails")
        latency = "—" if r["latency_ratio_vs_ultralytics_fp32"] is None else f"{r['latency_ratio_vs_ultralytics_fp32']:.3f}"
        ci = "—" if not r["latency_ratio_ci"] else f"[{r['latency_ratio_ci'][0]:.3f}, {r['latency_ratio_ci'][1]:.3f}]"
        lines.append(
            f"| {r['target']:.0%} | {r['macs_reduction']:.1%} | {latency} | {ci} | {r['map50_95']:.4f} | {share:.3f} | "
            f"{r['map_ratio_vs_control']:.3f} | {gate} |"
        )
    return [*lines, ""]


def run_sweep(params_file: Path, overrides: tuple[str, ...], measure: bool) -> dict:
    from benchmarks import exports
    from benchmarks.ablation import Pairing, measured_row
    from benchmarks.library_run import LibraryRun, run_library_steps
    from benchmarks.measure import Timing, save_inputs
    from benchmarks.references import converged_params, trained_reference
    from benchmarks.run import PROBE_TIMEOUT_S
    from edgeslim import workspace
    from edgeslim.dag.steps.evaluate import CONTROL
    from edgeslim.data.splits import split_images

    started = time.perf_counter()
    p = load_params(params_file, overrides)
    data = workspace.dataset(p)
    cache = workspace.root(p) / "bench" / "cache"
    ref = trained_reference("converged", converged_params(p), p, data, cache / "references")
    runs = cache / "runs" / "converged"
    default_file = runs / "default" / "library-run.json"
    if not default_file.exists():
        raise EdgeslimError(f"no benchmark run of the converged reference in {runs / 'default'}: run `python -m benchmarks.run` first")
    default = LibraryRun.from_json(json.loads(default_file.read_text())["run"])
    control = default.stages[CONTROL].map50_95
    work = workspace.root(p) / "bench" / "sweep"
    ctx = None
    if measure:
        reference = exports.ultralytics_fp32(ref.weights, ref.imgsz, work / "ultralytics-onnx-fp32", dynamic=False)
        inputs = save_inputs(split_images(data.data_yaml, "val"), ref.imgsz, 1, work / "inputs.npy")
        timing = Timing(p.evaluate.threads, p.benchmark.pair_runs, p.evaluate.latency_warmup, 1, PROBE_TIMEOUT_S)
        ctx = Pairing(reference, inputs, timing, p.benchmark.pairs, p.benchmark.pair_processes)
    rows = []
    for level in p.benchmark.macs_sweep:
        lp = load_params(params_file, (*overrides, f"prune.target_macs_reduction={level}", "evaluate.control=false"))
        run = run_library_steps(lp, ref.weights, ref.imgsz, runs / "sweep" / f"macs-{level:g}", True)
        rows.append({"target": level, **measured_row(f"{level:.0%} MACs", run, "onnx-fp32", run.fp32, ctx, control)})
    level = p.prune.target_macs_reduction  # the default, as the benchmark ran it
    rows.append({"target": level, **measured_row(f"{level:.0%} MACs (default)", default, "onnx-fp32", default.fp32, ctx, control)})
    return {
        "subject": f"the converged reference ({ref.epochs_run} epochs, {ref.stopped_by}) @ {ref.imgsz} px",
        "finetune_epochs": p.prune.finetune.epochs,
        "control_map50_95": control,
        "min_map_ratio": p.gates.min_map_ratio,
        "latency_measured": measure,
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one param (repeatable)")
    parser.add_argument("--no-latency", action="store_true", help="train and score only (a busy machine); rerun without it to time")
    args = parser.parse_args(argv)
    try:
        p = load_params(args.params, args.set)
        from edgeslim import workspace

        workspace.configure_environment(p)
        result = run_sweep(args.params, tuple(args.set), not args.no_latency)
    except EdgeslimError as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return exc.exit_code
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = "\n".join(_lines(result))
    (RESULTS_DIR / "sweep.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

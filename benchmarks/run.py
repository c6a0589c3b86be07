"""``python -m benchmarks.run``: edgeslim's artifacts side by side with what users ship without it.

Heavy imports (torch, ultralytics, Prefect) wait until the params are loaded and Prefect's home is
set, exactly as the ``edgeslim`` CLI does, so ``--help`` is instant and Prefect's database lands
in the workspace.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from edgeslim.config import DEFAULT_PARAMS, load_params
from edgeslim.errors import EdgeslimError

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIN_LARGER_BATCH = 2
PROBE_TIMEOUT_S = 600.0

DESCRIPTION = """\
Benchmark edgeslim's compressed artifacts against what users ship without it, in one run:
  the source checkpoint (PyTorch eager, unfused), ultralytics' own ONNX FP32 and INT8 exports,
  and every artifact of edgeslim's compress recipe (fused .pt, ONNX FP32, ONNX INT8),
for two trained subjects: the CONVERGED reference (the embedded baseline trained until val fitness
plateaus, registered as benchmark.converged_model_name) and yolov8n at 320 px trained on the same
set. Both are trained once and cached (workspace/bench/cache); so are the compress runs.
Headline per subject: the artifact the target profile ships, as a latency ratio to ultralytics' FP32
export (median of paired, alternating A/B probes, 95% CI, identical-network self-check) and its
mAP50-95 as a share of the converged reference and of the equal-budget control. Ablation: prune
only, + distillation, + latency-driven pruning, + INT8. Frontier: the recipe at other MACs targets
(benchmark.frontier_macs) and the fastest that passes its gates. ONNX Runtime graph levels and export
options as paired ratios. Per artifact: mAP, size, MACs, latency/throughput at batch 1 and --batch,
peak memory. Also the flow's own cost and, where CUDA exists, GPU runtimes.
Writes benchmarks/results/<name>.json, .md, .png and -frontier.png. Methodology: benchmarks/README.md."""

EPILOG = """\
examples:
  python -m benchmarks.run                                  # converged reference + yolov8n, full timing
  python -m benchmarks.run --quick --name smoke             # params.yaml's evaluate runs/warm-up
  python -m benchmarks.run --model pcb-detector:1 -S evaluate.threads=1
knobs read from params.yaml: benchmark.* (references, latency budget, pairs), evaluate.threads,
evaluate.conf/iou/batch (mAP), target.*, prune.*, calibration.*, quantize.*, export.opset."""


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="default", help="result name: benchmarks/results/<name>.{json,md,png} (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument(
        "-S",
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one param, as for edgeslim (repeatable), e.g. -S evaluate.threads=1",
    )
    parser.add_argument(
        "--model",
        metavar="NAME[@ALIAS|:VERSION]",
        help="benchmark this registered model instead of the converged reference (default: train, register and use "
        "benchmark.converged_model_name)",
    )
    parser.add_argument(
        "--batch", type=_at_least(MIN_LARGER_BATCH), default=8, help="the larger batch timed besides batch 1 (default: %(default)s)"
    )
    parser.add_argument(
        "--runs",
        type=_at_least(1),
        default=150,
        help="timed runs per latency figure, rounded up to a multiple of --rounds (default: %(default)s)",
    )
    parser.add_argument("--warmup", type=_at_least(0), default=10, help="untimed warm-up runs in each probe process (default: %(default)s)")
    parser.add_argument(
        "--rounds",
        type=_at_least(1),
        default=3,
        help="split each figure's runs over this many probe processes, interleaved across artifacts; each figure "
        "is its fastest round's, as interference only adds time (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: take runs/warm-up from params.yaml (evaluate.latency_runs/latency_warmup) instead of --runs/--warmup",
    )
    parser.add_argument(
        "--probe-timeout", type=float, default=PROBE_TIMEOUT_S, help="seconds one latency probe may take (default: %(default)s)"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where results go (default: benchmarks/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        p = load_params(args.params, args.set)
        from edgeslim import workspace

        workspace.configure_environment(p)
        from benchmarks.bench import Settings, run_benchmark

        settings = Settings(
            name=args.name,
            params_file=args.params,
            overrides=tuple(args.set),
            model=args.model,
            batch=args.batch,
            runs=args.runs,
            warmup=args.warmup,
            rounds=args.rounds,
            quick=args.quick,
            probe_timeout_s=args.probe_timeout,
            out_dir=args.out_dir,
            command=shlex.join(["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
        )
        result = run_benchmark(settings)
    except EdgeslimError as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(Path(result["outputs"]["md"]).read_text())
    print(f"wall time {result['wall_s']:.0f} s; results: {', '.join(result['outputs'].values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

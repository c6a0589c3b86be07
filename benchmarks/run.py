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

DESCRIPTION = """\
Benchmark a registered detector's artifacts side by side, in one process and one run:
  the source checkpoint (PyTorch eager, unfused), ultralytics' own ONNX FP32 and INT8 exports,
  and every artifact of edgeslim's compress recipe (fused .pt, ONNX FP32, ONNX INT8),
for the registered model AND an untrained ultralytics reference (yolov8n.yaml, speed/size only).
Per artifact: held-out mAP50-95/mAP50, file size, MACs/params, ONNX Runtime CPU latency (median,
p90) and throughput at batch 1 and --batch, peak memory of a fresh process, ratios to ultralytics'
FP32 ONNX export. Also the compress flow's own cost (two real runs on a scratch MLflow server vs.
the same steps without Prefect/MLflow) and, where CUDA exists, GPU runtimes.
Writes benchmarks/results/<name>.json, .md and .png. Methodology: benchmarks/README.md."""

EPILOG = """\
examples:
  python -m benchmarks.run                                  # embedded champion, full timing
  python -m benchmarks.run --quick --name smoke             # params.yaml's evaluate runs/warm-up
  python -m benchmarks.run --model pcb-detector:1 -S evaluate.threads=1
knobs read from params.yaml: evaluate.threads (ORT intra-op / torch threads), evaluate.conf/iou/batch
(mAP), calibration.num_images (both INT8 recipes), quantize.*, export.opset (edgeslim's exports)."""


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
        "--model", metavar="NAME[@ALIAS|:VERSION]", help="registered source model (default: <model_name>@<mlflow.source_alias>)"
    )
    parser.add_argument(
        "--reference-cfg", default="yolov8n.yaml", help="ultralytics model yaml of the untrained reference (default: %(default)s)"
    )
    parser.add_argument(
        "--reference-imgsz", type=_at_least(1), default=320, help="image size of the reference model (default: %(default)s)"
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
    parser.add_argument("--probe-timeout", type=float, default=600.0, help="seconds one latency probe may take (default: %(default)s)")
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
            reference_cfg=args.reference_cfg,
            reference_imgsz=args.reference_imgsz,
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

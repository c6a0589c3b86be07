"""``python -m benchmarks.calibration``: INT8 mAP calibrated on the curated set vs random samples of the same size.

The experiment of the calibration issue: one fused model, one FP32 export, one measured pool; for
each calibration-set size K, the curated selection and ``--seeds`` seeded random samples are each
quantized with the flow's own recipe (params.yaml ``quantize``, no fallback) and scored by the flow's
validator on the held-out val split. Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.paths import portable_path, results_main
from benchmarks.unpruned import unpruned_export
from edgeslim.config import DEFAULT_PARAMS
from edgeslim.data.splits import split_images


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, help="a trained ultralytics checkpoint (default: the registered champion)")
    source.add_argument("--model", default=None, help="NAME, NAME@ALIAS or NAME:VERSION in the registry (default: <model_name>@champion)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="calibration-set sizes K (default: calibration.num_images and a quarter of it)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="random samples per size (default: %(default)s)")
    parser.add_argument("--name", default="calibration", help="result name (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return parser


def run(args: argparse.Namespace) -> dict:
    from edgeslim.calibration.curate import select_calibration_set
    from edgeslim.calibration.pool import measure_pool
    from edgeslim.calibration.probe import ModelProbe
    from edgeslim.dag.step import FP32
    from edgeslim.evaluate.accuracy import evaluate_map
    from edgeslim.quantize.ort_int8 import quantize_int8

    subject = unpruned_export(args, "bench-calibration")  # calibration of the unpruned fused model
    p, data, work, weights = subject.p, subject.data, subject.work, subject.weights
    imgsz = p.compress.imgsz
    fp32 = subject.outcomes["export"].artifact(FP32)
    task = subject.task

    def score(artifact: Path) -> float:
        return evaluate_map(artifact, data.data_yaml, imgsz, p.evaluate, work / "val", task=task).map50_95

    baseline, fp32_map = score(weights), score(fp32)
    pool = measure_pool(
        split_images(data.data_yaml, "calib_pool"),
        ModelProbe(fp32, len(data.names), task, p.calibration.pred_conf, p.calibration.pred_iou, p.evaluate.threads),
        imgsz,
        len(data.names),
        task,
    )
    sizes = args.sizes or sorted({p.calibration.num_images, max(1, p.calibration.num_images // 4)})
    rows = []
    for k in sizes:
        for method, seed in [("curated", p.calibration.seed), *(("random", s) for s in range(args.seeds))]:
            cp = p.calibration.model_copy(update={"num_images": k, "method": method, "seed": seed})
            folder = work / f"k{k}-{method}-{seed}"
            chosen = select_calibration_set(pool, data.names, cp, folder)
            int8 = quantize_int8(fp32, chosen.images, imgsz, p.quantize, folder / "model-int8.onnx").path
            value = score(int8)
            cov = chosen.report["coverage"]["selected"]
            rows.append(
                {
                    "k": k,
                    "set": method,
                    "seed": seed,
                    "map50_95": round(value, 4),
                    "ratio": round(value / baseline, 4),
                    "strata_covered": f"{cov['strata_covered']}/{cov['strata_total']}",
                    "mean_range_coverage": cov["mean_range_coverage"],
                    "feature_radius": cov["feature_radius"],
                    "size_ratio": round(int8.stat().st_size / fp32.stat().st_size, 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights": portable_path(weights),
        "pool_images": len(pool.images),
        "baseline_map50_95": round(baseline, 4),
        "fp32_map50_95": round(fp32_map, 4),
        "quantize": p.quantize.model_dump(mode="json"),
        "rows": rows,
        "summary": _summary(rows),
    }


def _summary(rows: list[dict]) -> list[dict]:
    """Per K: the curated set's mAP and the random samples' mean, min and max."""
    out = []
    for k in sorted({r["k"] for r in rows}):
        curated = next(r["map50_95"] for r in rows if r["k"] == k and r["set"] == "curated")
        random_maps = [r["map50_95"] for r in rows if r["k"] == k and r["set"] == "random"]
        out.append(
            {
                "k": k,
                "curated": curated,
                "random_mean": round(statistics.mean(random_maps), 4),
                "random_min": min(random_maps),
                "random_max": max(random_maps),
                "random_beaten_or_tied": sum(curated >= m for m in random_maps),
                "random_samples": len(random_maps),
            }
        )
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Calibration set: curated vs random (INT8 mAP50-95 on held-out val)",
        "",
        f"{result['when']} · weights `{result['weights']}` · pool {result['pool_images']} images · baseline mAP50-95 "
        f"{result['baseline_map50_95']} · FP32 ONNX {result['fp32_map50_95']} · quantize.method {result['quantize']['method']}",
        "",
        "| K | curated | random mean | random min | random max | curated ≥ random |",
        "|---|---|---|---|---|---|",
        *(
            f"| {s['k']} | {s['curated']} | {s['random_mean']} | {s['random_min']} | {s['random_max']} | {s['random_beaten_or_tied']}/{s['random_samples']} |"
            for s in result["summary"]
        ),
        "",
        "| K | set | seed | mAP50-95 | × baseline | strata covered | mean range coverage | feature radius | INT8/FP32 size |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['k']} | {r['set']} | {r['seed']} | {r['map50_95']} | {r['ratio']} | {r['strata_covered']} | {r['mean_range_coverage']} | {r['feature_radius']} | {r['size_ratio']} |"
            for r in result["rows"]
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return results_main("python -m benchmarks.calibration", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m benchmarks.fan``: the Dask fan-out (tasks/fan.py) against one item after another.

The two loops of a compress run that the flow hands to a ``DaskTaskRunner``, each timed both ways
in this one process, on the same inputs:

- **sensitivity sweep**: the INT8 fallback's per-layer probes (one re-quantization and inference
  each) on the FP32 export of ``--weights``, calibration ranges cached first, as the fallback has
  them by then. The rankings must be equal, or the benchmark fails.
- **evaluate**: the validations of the source, the fused model, the FP32 and the INT8 ONNX (the
  latencies are timed afterwards, in this process, either way).
- **empty fan-out**: a cluster's cost with nothing to do (start, a trivial task per worker, close).

From those: the overhead of a fan-out and the per-item time, and what the sweep would take on N
cores, stated as a projection (items spread evenly, the overhead as measured here). Writes
``benchmarks/results/fan.{json,md}``. Run it on a quiet machine: two heavy jobs on two cores
distort each other's figures.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.paths import portable_path, results_main
from benchmarks.unpruned import unpruned_export
from edgeslim.config import DEFAULT_PARAMS, DaskParams

PROJECTED_CORES = (2, 4, 8, 16)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fan", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, help="a trained ultralytics checkpoint (default: the registered champion)")
    source.add_argument("--model", default=None, help="NAME, NAME@ALIAS or NAME:VERSION in the registry (default: <model_name>@champion)")
    parser.add_argument("--name", default="fan", help="result name (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return parser


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _noop(item: int) -> int:
    return item


def _comparison(items: int, sequential_s: float, dask_s: float) -> dict:
    return {"items": items, "sequential_s": round(sequential_s, 2), "dask_s": round(dask_s, 2), "speedup": round(sequential_s / dask_s, 3)}


def projection(items: int, per_item_s: float, overhead_s: float, cores: int) -> float:
    """Wall time of ``items`` probes on ``cores`` worker processes: the fan-out's fixed cost, then rounds of ``cores`` items."""
    return overhead_s + math.ceil(items / cores) * per_item_s


def run(args: argparse.Namespace) -> dict:
    from edgeslim.dag.step import FP32
    from edgeslim.dag.steps.evaluate import BASELINE, FUSED, ONNX_FP32, ONNX_INT8, Scorer
    from edgeslim.data.splits import split_images
    from edgeslim.data.tasks import scoring
    from edgeslim.quantize.ort_int8 import OrtQuantizer
    from edgeslim.quantize.sensitivity import rank_layers
    from tasks.fan import dask_fan

    subject = unpruned_export(args, "bench-fan")  # the unpruned fused model: every layer of the source
    p, data, work, weights = subject.p, subject.data, subject.work, subject.weights
    imgsz = p.compress.imgsz
    fp32, fused = subject.outcomes["export"].artifact(FP32), subject.outcomes["fuse"].artifact("model")
    dp: DaskParams = p.prefect.dask.model_copy(update={"enabled": True, "min_items": 2})
    fan = dask_fan(dp)

    calib = split_images(data.data_yaml, "calib_pool")[: p.calibration.num_images]
    quantizer = OrtQuantizer(fp32, calib, imgsz, p.quantize, work / "quantize")
    int8 = quantizer.quantize(work / "model-int8.onnx").path  # also caches the calibration ranges
    probe_images = calib[: p.quantize.fallback.sensitivity_images]
    conf = p.quantize.fallback.conf
    sequential, sweep_seq_s = _timed(lambda: rank_layers(quantizer, work / "probes-sequential", probe_images, conf))
    on_dask, sweep_dask_s = _timed(lambda: rank_layers(quantizer, work / "probes-dask", probe_images, conf, fan))
    if [e.layer for e in on_dask] != [e.layer for e in sequential]:
        raise SystemExit("the Dask sweep ranked the layers differently from the sequential one")

    scorer = Scorer(data, imgsz, p.evaluate, work / "validation", scoring(subject.task, p.gates.metric))
    rows = [(BASELINE, weights, None), (FUSED, fused, None), (ONNX_FP32, fp32, None), (ONNX_INT8, int8, None)]
    _, eval_seq_s = _timed(lambda: scorer.stages(rows, fused))
    _, eval_dask_s = _timed(lambda: scorer.stages(rows, fused, fan))
    _, empty_s = _timed(lambda: fan(_noop, list(range(dp.n_workers))))

    layers = len(sequential)
    # worker-seconds one probe took on the cluster (its Prefect task run included), beyond the fan-out's fixed cost
    per_probe = max(sweep_dask_s - empty_s, 0.0) * dp.n_workers / layers
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "weights": portable_path(weights),
        "imgsz": imgsz,
        "dask": dp.model_dump(mode="json"),
        "sensitivity_sweep": {**_comparison(layers, sweep_seq_s, sweep_dask_s), "probe_images": len(probe_images), "same_ranking": True},
        "evaluate": _comparison(len(rows), eval_seq_s, eval_dask_s),
        "empty_fan_out_s": round(empty_s, 2),
        "per_probe_sequential_s": round(sweep_seq_s / layers, 3),
        "per_probe_on_dask_s": round(per_probe, 3),
        "prefect_api": os.environ.get("PREFECT_API_URL") or "ephemeral (a temporary server per process)",
        "projection": {
            "note": "sweep wall time on N worker processes with one core each: the empty fan-out's cost, then rounds of N probes at the per-probe time measured on this cluster; it assumes a probe costs the same on more cores, which this 2-core machine cannot check",
            "sweep_s": {str(n): round(projection(layers, per_probe, empty_s, n), 1) for n in PROJECTED_CORES},
        },
    }


def markdown(result: dict) -> str:
    sweep, ev = result["sensitivity_sweep"], result["evaluate"]
    lines = [
        f"# Dask fan-out vs one after another ({result['when']})",
        "",
        f"{result['machine']['cpus']} CPUs; LocalCluster of {result['dask']['n_workers']} worker processes × "
        f"{result['dask']['threads_per_worker']} thread; `{result['weights']}` at {result['imgsz']} px.",
        "",
        "| loop | items | sequential s | Dask s | speed-up |",
        "|---|---|---|---|---|",
        f"| INT8 sensitivity sweep ({sweep['probe_images']} images per probe) | {sweep['items']} | {sweep['sequential_s']} | {sweep['dask_s']} | {sweep['speedup']}× |",
        f"| evaluate (validations; latencies after) | {ev['items']} | {ev['sequential_s']} | {ev['dask_s']} | {ev['speedup']}× |",
        "",
        f"An empty fan-out (cluster start, one trivial task per worker, close) took {result['empty_fan_out_s']} s; "
        f"one probe took {result['per_probe_sequential_s']} s in this process and {result['per_probe_on_dask_s']} worker-seconds on the cluster "
        f"(its task run included). Prefect API: {result['prefect_api']}. Same ranking both ways: {sweep['same_ranking']}.",
        "",
        "Projected sweep wall time on N cores (" + result["projection"]["note"] + "):",
        "",
        "| cores | " + " | ".join(result["projection"]["sweep_s"]) + " |",
        "|---" * (1 + len(result["projection"]["sweep_s"])) + "|",
        "| sweep s | " + " | ".join(str(v) for v in result["projection"]["sweep_s"].values()) + " |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return results_main("python -m benchmarks.fan", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""Re-parameterization benchmark: unfused vs fused, dual-head vs stripped, torch eager and ONNX Runtime.

    .venv/bin/python -m benchmarks.reparam [--params params.yaml] [--imgsz N] [--runs 60] [--rounds 5]

Two subjects, both untrained (speed, size and equivalence only; fusion does not depend on training):

- **RepConv-heavy**: ultralytics' ``yolov9t.yaml`` (GELAN, RepNCSPELAN4 blocks full of RepConv),
  unfused vs fused.
- **dual-head**: edgeslim's ``yolov9-dual`` (PGI auxiliary branch + head) at ``baseline.scale``,
  as trained (dual) vs stripped (single head) vs stripped + fused (what the flow exports).

Every variant is timed in this one process at batch 1 on a real val image, with torch's and ONNX
Runtime's intra-op threads = ``evaluate.threads``, one runtime after the other (ONNX Runtime threads
spinning between runs slowed interleaved torch calls 30x on 2 cores). Rounds are interleaved across
the variants of a runtime (round 1 of every variant, then round 2, ...) so a spell of load from
elsewhere hits all alike; the figure is the median of the fastest round (the pooled median too). ONNX files come from ``torch.onnx.export`` of the module as it is (the
ultralytics exporter would fuse before exporting, hiding the unfused case), with ONNX Runtime's
default graph optimizations, which fold BatchNorm into convolutions themselves but do not merge
RepConv's parallel branches. Writes ``benchmarks/results/reparam.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from thop import profile
from ultralytics.nn.modules import Detect
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

from benchmarks.paths import repo_relative
from benchmarks.probe import latencies_ms
from edgeslim import workspace
from edgeslim.config import Params, load_params
from edgeslim.data.images import preprocess_batch
from edgeslim.data.splits import split_images
from edgeslim.models.arch import write_arch_yaml
from edgeslim.models.dual import build_detection_model
from edgeslim.reparam.equivalence import compare_models
from edgeslim.reparam.fuse import fuse_model
from edgeslim.reparam.strip import strip_auxiliary
from edgeslim.runtime import onnxruntime_backend
from edgeslim.ultra import CFG_MODELS

RESULTS = Path(__file__).parent / "results"


def _calibrated(model: DetectionModel, images: np.ndarray) -> DetectionModel:
    """BatchNorm statistics moved towards real images (one train-mode pass at ultralytics' momentum)."""
    with torch.no_grad():
        model.train()(torch.from_numpy(images))
    return model.eval()


def _export(model: DetectionModel, imgsz: int, opset: int, path: Path) -> Path:
    """The module as it is (no fusion on the way), returning only the decoded predictions."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format = True, "onnx"
    torch.onnx.export(
        model,
        torch.zeros(1, 3, imgsz, imgsz),
        str(path),
        opset_version=opset,
        input_names=["images"],
        output_names=["output0"],
        dynamo=False,
    )
    return path


def _cost(model: DetectionModel, imgsz: int) -> dict:
    macs, _ = profile(copy.deepcopy(model), inputs=(torch.zeros(1, 3, imgsz, imgsz),), verbose=False)
    return {"params": int(sum(p.numel() for p in model.parameters())), "gflops": 2 * macs / 1e9}


def _time_all(calls: dict[str, object], x: np.ndarray, runs: int, rounds: int, warmup: int) -> dict[str, dict]:
    """Interleaved rounds over every variant; ``median_ms`` is the fastest round's median.

    Why the fastest round (as benchmarks/run.py): load from elsewhere comes in spells and only ever
    adds time; the pooled median over every call is kept alongside.
    """
    times: dict[str, list[list[float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(latencies_ms(call, x, warmup, runs))
    out = {}
    for name, per_round in times.items():
        medians = [float(np.median(t)) for t in per_round]
        pooled = [t for r in per_round for t in r]
        out[name] = {
            "median_ms": min(medians),
            "round_medians_ms": medians,
            "pooled_median_ms": float(np.median(pooled)),
            "pooled_p90_ms": float(np.percentile(pooled, 90)),
            "calls": len(pooled),
        }
    return out


def _torch_call(model: DetectionModel):
    model = model.eval()

    def call(x: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(x))

    return call


def _ort_call(path: Path, threads: int):
    session = onnxruntime_backend.open_session(path, threads, spinning=False)  # no busy-waiting between runs

    def call(x: np.ndarray) -> None:
        session.run(None, {"images": x})

    return call


def _subject(
    variants: dict[str, DetectionModel],
    pairs: dict[str, tuple[str, str]],
    args: argparse.Namespace,
    p: Params,
    images: np.ndarray,
    work: Path,
) -> dict:
    """Cost, equivalence, torch eager and ORT latency of each variant; ratios for each (after, before) pair."""
    x = images[:1]
    onnx = {name: _export(m, args.imgsz, p.export.opset, work / f"{name}.onnx") for name, m in variants.items()}
    # one runtime at a time: idle OpenMP / ONNX Runtime worker threads of the other would compete for the cores
    latency = _time_all({f"torch:{n}": _torch_call(m) for n, m in variants.items()}, x, args.runs, args.rounds, args.warmup)
    latency |= _time_all({f"ort:{n}": _ort_call(f, p.evaluate.threads) for n, f in onnx.items()}, x, args.runs, args.rounds, args.warmup)
    out: dict = {"variants": {}, "ratios": {}, "equivalence": {}}
    for name, model in variants.items():
        out["variants"][name] = {
            **_cost(model, args.imgsz),
            "onnx_bytes": onnx[name].stat().st_size,
            "torch_eager": latency[f"torch:{name}"],
            "onnx_runtime": latency[f"ort:{name}"],
        }
    for label, (after, before) in pairs.items():
        a, b = out["variants"][after], out["variants"][before]
        out["ratios"][label] = {
            "torch_eager_latency": a["torch_eager"]["median_ms"] / b["torch_eager"]["median_ms"],
            "onnx_runtime_latency": a["onnx_runtime"]["median_ms"] / b["onnx_runtime"]["median_ms"],
            "params": a["params"] / b["params"],
            "gflops": a["gflops"] / b["gflops"],
        }
        out["equivalence"][label] = compare_models(variants[before], variants[after], images).as_dict()
    return out


def _markdown(result: dict) -> str:
    lines = [
        f"# Re-parameterization benchmark ({result['settings']['imgsz']} px, batch 1, {result['settings']['threads']} threads)",
        "",
        "Latency: median of the fastest of the interleaved rounds (pooled medians in the JSON).",
        "",
    ]
    for subject in result["subjects"].values():
        lines += [
            f"## {subject['title']}",
            "",
            "| variant | params | GFLOPs | ONNX KiB | torch eager ms | ONNX Runtime ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in subject["variants"].items():
            lines.append(
                f"| {name} | {v['params']:,} | {v['gflops']:.3f} | {v['onnx_bytes'] / 1024:.0f} | {v['torch_eager']['median_ms']:.2f} | {v['onnx_runtime']['median_ms']:.2f} |"
            )
        lines += [
            "",
            "| ratio | torch eager latency | ONNX Runtime latency | params | GFLOPs | equivalence rel L2 |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in subject["ratios"].items():
            eq = subject["equivalence"][label]["rel_l2"]
            lines.append(
                f"| {label} | {r['torch_eager_latency']:.3f} | {r['onnx_runtime_latency']:.3f} | {r['params']:.3f} | {r['gflops']:.3f} | {eq:.2e} |"
            )
        lines.append("")
    lines += [
        "The dual model's ONNX file equals the stripped one's: at inference DualDetect returns the main head only, so the",
        "exporter drops the auxiliary branch as dead code; stripping pays off in eager PyTorch, parameters and checkpoints.",
        "",
    ]
    lines += [f"Load average before / after: {result['machine']['load_before']} / {result['machine']['load_after']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("-S", dest="overrides", action="append", default=[], help="section.key=value override")
    ap.add_argument(
        "--imgsz", type=int, default=None, help="input size of every variant (default: baseline.imgsz, what the project's models run at)"
    )
    ap.add_argument("--runs", type=int, default=60, help="timed calls per variant and round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls per variant and round")
    ap.add_argument("--repconv-cfg", default="yolov9t.yaml", help="ultralytics yaml of the RepConv-heavy subject")
    ap.add_argument("--name", default="reparam")
    args = ap.parse_args(argv)
    p = load_params(args.params, args.overrides)
    args.imgsz = args.imgsz or p.baseline.imgsz
    torch.set_num_threads(p.evaluate.threads)
    data = workspace.dataset(p)
    images = preprocess_batch(split_images(data.data_yaml, "val")[: p.fuse.equivalence_images], args.imgsz)
    work = workspace.root(p) / "bench" / args.name
    work.mkdir(parents=True, exist_ok=True)
    nc = len(data.names)
    load_before = os.getloadavg()

    torch.manual_seed(0)
    repconv = _calibrated(DetectionModel(yaml_model_load(next(CFG_MODELS.rglob(args.repconv_cfg))), nc=nc, verbose=False), images)
    fused, report = fuse_model(repconv)
    heavy = _subject({"unfused": repconv, "fused": fused}, {"fused / unfused": ("fused", "unfused")}, args, p, images, work)
    heavy.update(title=f"RepConv-heavy: {args.repconv_cfg}", fused_kinds=report.as_dict()["fused_kinds"])

    dual = _calibrated(
        build_detection_model(write_arch_yaml(p.baseline.model_copy(update={"arch": "yolov9-dual"}), nc, work), nc=nc), images
    )
    stripped, strip = strip_auxiliary(dual)
    stripped_fused, _ = fuse_model(stripped)
    pairs = {"stripped / dual": ("stripped", "dual"), "stripped+fused / dual": ("stripped+fused", "dual")}
    dual_result = _subject({"dual": dual, "stripped": stripped, "stripped+fused": stripped_fused}, pairs, args, p, images, work)
    dual_result.update(title=f"dual-head yolov9-dual at scale {list(p.baseline.scale)}", removed_layers=len(strip.removed))

    result = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "imgsz": args.imgsz,
            "runs": args.runs,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "threads": p.evaluate.threads,
            "opset": p.export.opset,
            "equivalence_images": len(images),
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime_backend.version(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "subjects": {"repconv_heavy": heavy, "dual_head": dual_result},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = repo_relative(result)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))
    return result


if __name__ == "__main__":
    main()

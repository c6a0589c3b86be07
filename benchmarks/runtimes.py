"""``python -m benchmarks.runtimes --report RUN/report.json``: the artifact a compress run ships, beside
what a user ships without edgeslim, on this machine's runtimes and precisions.

For the run's source checkpoint it makes ultralytics' own exports, each from a private copy:
``format=onnx`` (run on ONNX Runtime FP32), ``format=openvino`` and ``format=openvino int8=True``
(NNCF, calibrated on the calib-pool split, not on val). Those two run as ultralytics runs them: at
OpenVINO's default precision, which is bf16 on a CPU with AMX or AVX512-BF16. Each artifact gets
its mAP50-95 from ultralytics' validator (edgeslim's at the precision its format names) and its
latency from paired rounds in one process (every model called in turn, the order rotating), as a
ratio to ultralytics' ONNX export. The header names the CPU and its flags.

Headline: ``latency_ratio_vs_ultralytics_onnx`` of the preferred shipped artifact, and
``latency_ratio_vs_ultralytics_openvino``: against the faster of ultralytics' two OpenVINO exports
that keeps >= gates.min_map_ratio of the source's mAP. Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.paths import portable_command, portable_path, results_main

DEFAULT_NAME = "runtimes"


def _export(weights: Path, folder: Path, task: str, **args: object) -> Path:
    """ultralytics' exporter on a private copy of the ``task`` model ``weights`` (it writes beside its input)."""
    from edgeslim.ultra import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    start = folder / weights.name
    shutil.copy2(weights, start)
    produced = Path(YOLO(str(start), task=task).export(device="cpu", verbose=False, **args))
    start.unlink()
    return produced


PROG = "python -m benchmarks.runtimes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--report", type=Path, required=True, help="report.json of a compress run (its source, dataset and shipped formats)"
    )
    parser.add_argument("--params", type=Path, default=None, help="params.yaml (evaluate.threads, gates.min_map_ratio, calibration)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="results file name (benchmarks/results/<name>.json, .md)")
    parser.add_argument("--work", type=Path, default=Path("workspace/bench/runtimes"), help="scratch folder for the exports")
    parser.add_argument("--calls", type=int, default=20, help="calls per model per block")
    parser.add_argument("--blocks", type=int, default=10, help="paired blocks")
    return parser


def main(argv: list[str]) -> int:
    return results_main(PROG, build_parser(), lambda args: run(args, argv), markdown, argv)


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Export, score and time every artifact; the result as the JSON file holds it."""

    from benchmarks.exports import calibration_data_yaml
    from edgeslim.config import DEFAULT_PARAMS, load_params
    from edgeslim.data.images import preprocess
    from edgeslim.data.splits import split_images
    from edgeslim.data.synthetic import DatasetInfo
    from edgeslim.evaluate.accuracy import evaluate_map
    from edgeslim.runtime import onnxruntime_backend, openvino_backend
    from edgeslim.runtime.cpu import cpu_flags, cpu_model, machine_profile, notable_flags
    from edgeslim.runtime.formats import FORMATS
    from edgeslim.runtime.session import open_session, runner
    from edgeslim.runtime.timing import paired_medians

    p = load_params(args.params or DEFAULT_PARAMS)
    report = json.loads(args.report.read_text())
    stages = {s["name"]: s for s in report["stages"]}
    source = Path(stages["baseline"]["artifact"])
    metric = report["details"].get("metric", {"task": "detect", "label": "mAP50-95"})  # a report from before tasks: a detector
    task = metric["task"]
    data = report["details"]["dataset"]
    data_yaml, imgsz = Path(data["data_yaml"]), int(report["details"]["source"]["imgsz"])
    run_size = int(report["details"].get("input", {}).get("input_size", imgsz))  # what the shipped files take (a search may shrink it)
    info = DatasetInfo(root=Path(data["root"]), data_yaml=data_yaml, sha256=data["sha256"], names=tuple(data["names"]))
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    calib = calibration_data_yaml(info, work / "calib" / "data.yaml")
    n_calib = len(split_images(calib, "val"))
    print(f"exporting {source.name} with ultralytics (onnx, openvino, openvino int8 on {n_calib} calib-pool images)...", flush=True)
    rows = [
        {
            "name": "ultralytics onnx",
            "path": _export(source, work / "onnx", task, format="onnx", imgsz=imgsz),
            "format": "onnx-fp32",
            "default": False,
            "imgsz": imgsz,
        },
        {
            "name": "ultralytics openvino",
            "path": _export(source, work / "ov", task, format="openvino", imgsz=imgsz),
            "format": None,
            "default": True,
            "imgsz": imgsz,
        },
        {
            "name": "ultralytics openvino int8=True",
            "path": _export(source, work / "ov-int8", task, format="openvino", imgsz=imgsz, int8=True, data=str(calib), fraction=1.0),
            "format": None,
            "default": True,
            "imgsz": imgsz,
        },
    ]
    shipped = report["details"]["target"]["shipped"]
    rows += [
        {
            "name": f"edgeslim {s['format']}" + (" (preferred)" if i == 0 else ""),
            "path": Path(s["artifact"]),
            "format": s["format"],
            "default": False,
            "imgsz": run_size,
        }
        for i, s in enumerate(shipped)
    ]
    ev = p.evaluate
    for r in rows:
        fmt = FORMATS[r["format"]] if r["format"] else None
        r["map50_95"] = evaluate_map(
            r["path"],
            data_yaml,
            r["imgsz"],
            ev,
            work / "val" / r["name"].replace(" ", "-"),
            fmt=fmt,
            runtime_default=r["default"],
            task=task,
        ).map50_95
        if r["default"]:
            r["session"] = openvino_backend.open_session(r["path"], None, ev.threads)
            r["precision"] = f"{r['session'].precision} (OpenVINO's default here)"
        else:
            r["session"] = open_session(r["path"], fmt, ev.threads)
            r["precision"] = (f"{fmt.precision} (float parts fp32)" if fmt.precision == "int8" else fmt.precision) if fmt else "fp32"
        print(f"{r['name']}: {metric['label']} {r['map50_95']:.4f}, runs at {r['precision']}", flush=True)
    image = split_images(data_yaml, "val")[0]  # the same image, at the size each artifact takes
    load_before = os.getloadavg()
    timed = paired_medians([runner(r["session"], preprocess(image, r["imgsz"])) for r in rows], args.calls, args.blocks, 3)
    ratios = timed.ratios_to(0)
    spread = [[blk[i] / blk[0] for blk in timed.block_medians] for i in range(len(rows))]
    source_map = stages["baseline"]["map50_95"]
    table = []
    for r, ms, ratio, per_block in zip(rows, timed.medians_ms, ratios, spread):
        table.append(
            {
                "artifact": r["name"],
                "file": portable_path(r["path"]),
                "format": r["format"] or "openvino (ultralytics' export)",
                "precision": r["precision"],
                "imgsz": r["imgsz"],
                "map50_95": r["map50_95"],
                "map_ratio_vs_source": r["map50_95"] / source_map if source_map else None,
                "latency_ms": ms,
                "latency_ratio_vs_ultralytics_onnx": ratio,
                "block_ratio_range": [min(per_block), max(per_block)],
            }
        )
    keeps = [t for t in table[1:3] if (t["map_ratio_vs_source"] or 0) >= p.gates.min_map_ratio]
    anchor = min(keeps, key=lambda t: t["latency_ms"]) if keeps else None
    ours = table[3]
    headline = {
        "shipped": ours["artifact"],
        "latency_ratio_vs_ultralytics_onnx": ours["latency_ratio_vs_ultralytics_onnx"],
        "latency_ratio_vs_ultralytics_openvino": statistics.median(
            blk[3] / blk[table.index(anchor)] for blk in timed.block_medians
        ) if anchor else None,
        "ultralytics_openvino_anchor": anchor["artifact"] if anchor else "none keeps the gate's share of the source's mAP",
        "map_ratio_vs_source": ours["map_ratio_vs_source"],
    }  # fmt: skip
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": portable_command(["python", "-m", "benchmarks.runtimes", *argv], None),
        "machine": {
            "cpu": cpu_model(),
            "cpu_flags": notable_flags(),
            "all_flags_count": len(cpu_flags()),
            "profile": machine_profile(),
            "threads": ev.threads,
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "onnxruntime": onnxruntime_backend.version(),
            "openvino": openvino_backend.version(),
        },
        "source": {
            "checkpoint": portable_path(source),
            "map50_95": source_map,
            "metric": metric["label"],  # what every map50_95 here is (the task's primary, or gates.metric's)
            "imgsz": imgsz,
            "run": report.get("details", {}).get("mlflow_run_url"),
        },
        "timing": {"calls_per_block": args.calls, "blocks": args.blocks, "method": "paired rounds in one process, order rotating, batch 1"},
        "headline": headline,
        "rows": table,
    }
    return result


def markdown(result: dict) -> str:
    m, h = result["machine"], result["headline"]
    ov = h["latency_ratio_vs_ultralytics_openvino"]
    label = result["source"].get("metric", "mAP50-95")
    lines = [
        f"# Runtimes and precisions: edgeslim's shipped artifact beside ultralytics' exports ({result['when']})",
        "",
        f"CPU: {m['cpu']}; flags {', '.join(m['cpu_flags']) or 'none of note'} (profile `{m['profile']}`); {m['threads']} threads, batch 1; "
        f"ONNX Runtime {m['onnxruntime']}, OpenVINO {m['openvino']}; load {m['load_before']} → {m['load_after']}.",
        f"Source: `{result['source']['checkpoint']}` at {result['source']['imgsz']} px, {label} {result['source']['map50_95']:.4f}. "
        f"Timing: {result['timing']['method']}, {result['timing']['blocks']} blocks of {result['timing']['calls_per_block']} calls.",
        "",
        f"**Headline**: {h['shipped']} runs at **{h['latency_ratio_vs_ultralytics_onnx']:.3f}×** ultralytics' ONNX export"
        + (
            f" and {ov:.3f}× {h['ultralytics_openvino_anchor']}"
            if ov is not None
            else f"; OpenVINO anchor: {h['ultralytics_openvino_anchor']}"
        )
        + f", keeping {h['map_ratio_vs_source']:.3f} of the source's mAP.",
        "",
        f"| artifact | format | runs at | {label} | × source mAP | latency ms | × ultralytics ONNX | block range |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lo, hi = r["block_ratio_range"]
        lines.append(
            f"| {r['artifact']} | `{r['format']}` | {r['precision']}, {r.get('imgsz', result['source']['imgsz'])} px | {r['map50_95']:.4f} | {r['map_ratio_vs_source']:.3f} | "
            f"{r['latency_ms']:.2f} | {r['latency_ratio_vs_ultralytics_onnx']:.3f} | {lo:.2f}–{hi:.2f} |"
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One benchmark run, start to end: subjects → artifacts → measurements → flow cost → GPU → files.

Order matters for honest numbers: every CPU probe runs before the flow-cost section starts
Prefect's ephemeral API server and a scratch MLflow server, so no background server of ours
shares the two cores with a latency measurement.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import exports
from benchmarks.ablation import (
    Context,
    ablation_rows,
    ablation_runs,
    channel_floor,
    frontier_rows,
    frontier_variants,
    graph_settings,
    headline,
    variants,
)
from benchmarks.artifact_kind import ORT, Artifact
from benchmarks.artifacts import REFERENCE, UNTRAINED, build_artifacts
from benchmarks.flow_cost import Quietly, breakdown, prefect_startup_s, preserved, run_compress, scratch_registry
from benchmarks.gpu import gpu_section
from benchmarks.library_run import run_library_steps
from benchmarks.measure import Timing, input_shape, model_cost, onnx_opset, probe, save_inputs, summarize
from benchmarks.paths import repo_relative
from benchmarks.plot import plot_frontier, plot_results
from benchmarks.references import RECIPES, reference_overrides
from benchmarks.subjects import Subject, converged_subject, registered_subject, yolov8n_subject
from benchmarks.tables import markdown
from edgeslim import workspace
from edgeslim.cli import _tracking_uri
from edgeslim.config import Params, load_params
from edgeslim.data.splits import split_images
from edgeslim.registry.server import stop_server

VERSIONED_PACKAGES = ("torch", "onnxruntime", "onnx", "onnxslim", "ultralytics", "ultralytics-thop", "prefect", "mlflow")
CPU_MODEL_KEY = "model name"
SCRATCH_REGISTRY = "flow-registry"
CACHE = "cache"
from flows.compress import LATEST_REPORT  # noqa: E402 (what the flow rewrites in the workspace)

METHODOLOGY = {
    "latency": "each (artifact, batch) figure comes from `rounds` fresh child processes (benchmarks/probe.py), "
    "interleaved across all artifacts of both subjects (round 1 of every figure, then round 2, ...). ONNX Runtime "
    "CPUExecutionProvider with intra-op threads = evaluate.threads, inter-op 1, sequential execution, default graph "
    "optimizations; PyTorch eager with torch.set_num_threads(evaluate.threads). Input: real held-out val images "
    "letterboxed as the flow feeds them. Each process makes `warmup_per_round` untimed calls, then "
    "`runs_per_round` timed calls of one session.run()/model(). latency_ms = median, p90, mean, min, max of the "
    "round with the lowest median (interference from other processes only adds time and comes in spells of "
    "seconds that can cover a whole process; the fastest process estimates the artifact's own cost, as timeit "
    "does); round_medians shows every round; pooled_latency_ms = the same stats over every timed call of every round",
    "throughput": "batch / latency_ms.median, images per second, one stream",
    "batches": "static batch-1 ONNX files (what ships) cannot run batch > 1: larger batches run on a dynamic twin "
    "of each ONNX artifact (ultralytics export dynamic=True: batch, height and width free) made by the same "
    "recipe; `batch1_dynamic` times the twin at batch 1 to show what dynamic shapes cost. PyTorch runs any batch",
    "peak_memory": "Linux VmHWM (kernel high-water mark of resident memory) of the probe process; reset through "
    "/proc/self/clear_refs after the runtime is imported. peak_delta_mib = peak minus RSS just before loading "
    "the artifact (what the artifact adds: weights, session, arenas, activations); peak_mib = whole process; "
    "the highest of the rounds",
    "macs": "thop on the torch model, one imgsz x imgsz image: the unfused source for pytorch-eager, the fused "
    "model for the fused .pt and every ONNX artifact (ultralytics fuses Conv+BN before export; an INT8 graph "
    "runs the same MACs)",
    "map": "ultralytics' DetectionValidator through edgeslim.evaluate.accuracy (rect=False, evaluate.conf/iou) "
    "on the held-out val split; only for trained subjects",
    "ultralytics_int8": "model.export(format='onnx', quantize=8, data=<data.yaml whose val is the calib_pool split>, "
    "fraction=calibration.num_images): ONNX Runtime quantize_static with its defaults (QDQ, per-tensor, "
    "QInt8 activations and weights, MinMax), every node but Conv/Gemm/MatMul excluded; calibrated on as many "
    "calib-pool images as edgeslim's INT8 so the held-out val split stays unseen",
    "flow_cost": "benchmarks/flow_cost.py: the real compress flow twice on a throwaway local MLflow server "
    "holding a copy of the source model (first run = real first compression, second = re-run with nothing "
    "changed); compute = mean of the same task bodies run directly in this process right before and right "
    "after the first flow run",
}


@dataclass(frozen=True)
class Settings:
    name: str
    params_file: Path
    overrides: tuple[str, ...]
    model: str | None  # registered source; None: the converged reference (trained and registered here)
    batch: int
    runs: int
    warmup: int
    rounds: int  # each figure's runs are split over this many interleaved probe processes
    quick: bool  # runs/warmup from params.yaml's evaluate section instead
    probe_timeout_s: float
    out_dir: Path
    command: str


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith(CPU_MODEL_KEY)), platform.processor())
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {pkg: importlib.metadata.version(pkg) for pkg in VERSIONED_PACKAGES},
    }


def _median(entry: dict, key: str) -> float | None:
    return entry.get("cpu", {}).get(key, {}).get("latency_ms", {}).get("median")


def _throughput(entry: dict, key: str) -> float | None:
    return entry.get("cpu", {}).get(key, {}).get("throughput_ips")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def describe_artifact(a: Artifact, subject: Subject, costs: dict[Path, dict]) -> dict:
    """Everything about one artifact but its timings: size, ONNX facts, mAP, MACs/params (or why it is absent)."""
    entry: dict = {"name": a.name, "producer": a.producer, "runtime": a.runtime, "precision": a.precision}
    if a.absent:
        return {**entry, "absent": a.absent}
    entry.update(path=str(a.path), size_bytes=a.path.stat().st_size)
    if a.runtime == ORT:
        entry["onnx"] = {
            "opset": onnx_opset(a.path),
            "input_shape": input_shape(a.path),
            "batch_twin": str(a.batch_twin),
            "batch_twin_input_shape": input_shape(a.batch_twin),
            "batch_twin_size_bytes": a.batch_twin.stat().st_size,
        }
    entry.update(a.accuracy or {"map50_95": None, "map50": None})
    if not subject.trained:
        entry["map_note"] = UNTRAINED
    if a.cost_from not in costs:
        costs[a.cost_from] = model_cost(a.cost_from, subject.imgsz)
    entry["cost"] = costs[a.cost_from]
    return entry


def probe_plan(a: Artifact, batch: int) -> dict[str, tuple[Path, int]]:
    """CPU figures of one artifact: key → (file, batch). Batches > 1 run on the batch twin."""
    if a.absent:
        return {}
    plan = {"batch1": (a.path, 1)}
    if a.runtime == ORT:
        plan["batch1_dynamic"] = (a.batch_twin, 1)
    plan[f"batch{batch}"] = (a.batch_twin, batch)
    return plan


def measure_cpu(entries: list[tuple[dict, Artifact, Path]], batch: int, timing: Timing) -> None:
    """Fill ``entry["cpu"]`` of every artifact; rounds are interleaved across all artifacts and subjects."""
    jobs = [(entry, key, file, b, inputs) for entry, a, inputs in entries for key, (file, b) in probe_plan(a, batch).items()]
    samples: list[list[dict]] = [[] for _ in jobs]
    for r in range(timing.rounds):
        print(f"CPU probes, round {r + 1}/{timing.rounds} ({len(jobs)} probes)", flush=True)
        for job, (_, _, file, b, inputs) in zip(samples, jobs):
            job.append(probe(file, inputs, b, timing))
    for rounds, (entry, key, file, b, _) in zip(samples, jobs):
        entry.setdefault("cpu", {})[key] = summarize(file, b, rounds, timing)


def add_ratios(entries: list[dict], batch: int) -> None:
    """Every artifact against ultralytics' FP32 ONNX export of the same subject (> 1: larger)."""
    ref = next(e for e in entries if e["name"] == REFERENCE)
    big = f"batch{batch}"
    for e in entries:
        if "absent" in e:
            continue
        if "absent" in ref:
            e["vs_ultralytics_onnx_fp32"] = {"absent": f"{REFERENCE} is absent: {ref['absent']}"}
            continue
        e["vs_ultralytics_onnx_fp32"] = {
            "latency_batch1": _ratio(_median(e, "batch1"), _median(ref, "batch1")),
            f"latency_{big}": _ratio(_median(e, big), _median(ref, big)),
            f"throughput_{big}": _ratio(_throughput(e, big), _throughput(ref, big)),
            "size": e["size_bytes"] / ref["size_bytes"],
            "map50_95": _ratio(e["map50_95"], ref["map50_95"]),
            "map50": _ratio(e["map50"], ref["map50"]),
        }


FLOW_COST_OVERRIDES = ("prune.enabled=false",)


def pruning_effect(entries: list[dict], batch: int) -> dict:
    """Pruned (+ finetuned) FP32 ONNX against the unpruned fused FP32 ONNX: the speed pruning buys."""
    by_name = {e["name"]: e for e in entries}
    pruned, unpruned = by_name.get("edgeslim-onnx-fp32"), by_name.get("edgeslim-onnx-fp32-unpruned")
    if not pruned or not unpruned or "absent" in pruned or "absent" in unpruned:
        return {"absent": "no pruned/unpruned FP32 ONNX pair"}
    big = f"batch{batch}"
    return {
        "latency_batch1": _ratio(_median(pruned, "batch1"), _median(unpruned, "batch1")),
        f"latency_{big}": _ratio(_median(pruned, big), _median(unpruned, big)),
        "macs": pruned["cost"]["macs"] / unpruned["cost"]["macs"],
        "params": pruned["cost"]["params"] / unpruned["cost"]["params"],
        "size": pruned["size_bytes"] / unpruned["size_bytes"],
        "map50_95": _ratio(pruned["map50_95"], unpruned["map50_95"]),
    }


def flow_cost_section(s: Settings, source: Subject, work: Path) -> dict:
    """Two real compress flow runs on a scratch registry, and their cost against the same steps run directly.

    The direct steps run twice, right before and right after the flow's first run, with the same
    servers up, and their mean is the compute time: load from other processes drifts, and one
    direct run far from the flow run would read that drift as (negative) Prefect overhead. Every
    timed segment starts once the scratch server is idle (flow_cost.settle).

    Pruning is off here (FLOW_COST_OVERRIDES): its finetuning is pure compute, the same inside and
    outside the flow, so it would only dilute the orchestration share while adding three finetunes
    (minutes) to the benchmark; the artifact section above measures the pruned model itself.
    """
    overrides = (*s.overrides, *FLOW_COST_OVERRIDES)
    p = load_params(s.params_file, overrides)
    root = work / SCRATCH_REGISTRY
    try:
        with preserved(workspace.root(p) / LATEST_REPORT):
            server, model_ref = scratch_registry(p, source, root)
            quietly = Quietly(server.pid, p.mlflow.startup_timeout_s)
            startup = quietly(prefect_startup_s)
            before = quietly(run_library_steps, p, source.weights, source.imgsz, work / "flow-direct-before", True)
            first = quietly(run_compress, server.url, model_ref, s.params_file, overrides)
            after = quietly(run_library_steps, p, source.weights, source.imgsz, work / "flow-direct-after", True)
            second = quietly(run_compress, server.url, model_ref, s.params_file, overrides)
    except Exception as exc:  # noqa: BLE001 — a failing flow is a result to record, the rest still counts
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        stop_server(root)
    direct = {step: (before.timings_s[step] + after.timings_s[step]) / 2 for step in before.timings_s}
    flow_maps = {st["name"]: st["map50_95"] for st in first.report["stages"]}
    return {
        "overrides": list(FLOW_COST_OVERRIDES),
        "registry": f"throwaway local mlflow server ({server.url}) holding a copy of {source.label} as {model_ref}",
        "first_run": {
            "wall_s": first.wall_s,
            "report": str(first.report_path),
            "timings_s": first.report["timings_s"],
            "published": first.report["published"],
        },
        "rerun_nothing_changed": {
            "wall_s": second.wall_s,
            "report": str(second.report_path),
            "published": second.report["published"],
            "note": "Prefect's API server is already up in this process; a fresh `edgeslim compress` also pays prefect_startup_s",
        },
        "prefect_startup_s": startup,
        "scratch_server_settle_waits_s": quietly.waits_s,
        "direct_timings_s": {"before_first_run": before.timings_s, "after_first_run": after.timings_s, "mean": direct},
        "breakdown": breakdown(first, startup, direct),
        "map50_95_flow_vs_direct": {
            k: {"flow": v, "direct": before.stages[k].map50_95 if k in before.stages else None} for k, v in flow_maps.items()
        },
    }


def subject_params(s: Settings, subject: Subject) -> Params:
    """The benchmark's params for ``subject``: the control is on, plus the subject's own overrides."""
    return load_params(s.params_file, (*s.overrides, "evaluate.control=true", *subject.overrides))


def run_benchmark(s: Settings) -> dict:
    """Run every section; write <name>.json, <name>.md, <name>.png and <name>-frontier.png under ``s.out_dir``."""
    started = time.perf_counter()
    p = load_params(s.params_file, s.overrides)
    runs, warmup = (p.evaluate.latency_runs, p.evaluate.latency_warmup) if s.quick else (s.runs, s.warmup)
    timing = Timing(p.evaluate.threads, runs, warmup, s.rounds, s.probe_timeout_s)
    work = workspace.root(p) / "bench" / s.name
    stop_server(work / SCRATCH_REGISTRY)  # a scratch server an interrupted run left behind
    shutil.rmtree(work, ignore_errors=True)
    load = {"start": os.getloadavg()}

    cache = workspace.root(p) / "bench" / CACHE  # trained references and library runs, kept across benchmark runs
    tracking = _tracking_uri(p)
    on_own_data = {name: reference_overrides(p, name) for name in RECIPES}  # each reference's benchmark-size set
    ref_p = {name: load_params(s.params_file, (*s.overrides, *extra)) for name, extra in on_own_data.items()}
    main = (
        registered_subject(tracking, s.model, p, work / "registered")
        if s.model
        else converged_subject(tracking, ref_p["converged"], on_own_data["converged"], cache / "references", work / "converged")
    )
    subjects = [main, yolov8n_subject(ref_p["yolov8n"], on_own_data["yolov8n"], cache / "references")]
    built, data_of = [], {}
    for subj in subjects:
        sp = subject_params(s, subj)
        data_of[subj.key] = workspace.dataset(sp)
        calib_yaml = exports.calibration_data_yaml(data_of[subj.key], work / subj.key / "calibration-data.yaml")
        artifacts, run = build_artifacts(subj, sp, data_of[subj.key].data_yaml, calib_yaml, work / subj.key, cache / "runs" / subj.key)
        built.append((subj, artifacts, run))
    overrides = (*s.overrides, *main.overrides)
    default = (subject_params(s, main), built[0][2])
    variant_runs = ablation_runs(s.params_file, overrides, main, default, cache / "runs" / main.key / "ablation", variants(p.benchmark))
    frontier_runs = ablation_runs(
        s.params_file, overrides, main, default, cache / "runs" / main.key / "frontier", frontier_variants(p.benchmark)
    )

    results, measured, gpu_inputs, contexts = [], [], [], []
    pair_timing = Timing(p.evaluate.threads, p.benchmark.pair_runs, warmup, 1, s.probe_timeout_s)
    for subj, artifacts, run in built:
        inputs = save_inputs(split_images(data_of[subj.key].data_yaml, "val"), subj.imgsz, s.batch, work / subj.key / "inputs.npy")
        costs: dict[Path, dict] = {}
        entries = [describe_artifact(a, subj, costs) for a in artifacts]
        measured += [(e, a, inputs) for e, a in zip(entries, artifacts)]
        results.append(
            {
                "key": subj.key,
                "label": subj.label,
                "imgsz": subj.imgsz,
                "trained": subj.trained,
                "origin": subj.origin,
                "inputs": str(inputs),
                "artifacts": entries,
            }
        )
        gpu_inputs.append((subj.key, artifacts, inputs))
        reference = next(a for a in artifacts if a.name == REFERENCE)
        contexts.append(
            (subj, run, Context(reference.path, inputs, pair_timing, p.benchmark.pairs, p.benchmark.pair_processes, subject=subj))
        )
    load["before_probes"] = os.getloadavg()
    measure_cpu(measured, s.batch, timing)
    heads = {subj.key: headline(subject_params(s, subj), run, ctx) for subj, run, ctx in contexts}
    main_run, main_ctx = contexts[0][1], contexts[0][2]
    rows = [*ablation_rows(variant_runs, main_run, main_ctx), channel_floor(p, main_ctx, work / "channel-floor")]
    frontier = frontier_rows(frontier_runs, main_run, main_ctx)
    settings_rows = graph_settings(p, main_run, main, main_ctx, work / "graph-settings")
    load["after_probes"] = os.getloadavg()
    for subject in results:
        add_ratios(subject["artifacts"], s.batch)
        subject["pruned_vs_unpruned_fp32"] = pruning_effect(subject["artifacts"], s.batch)

    flow = flow_cost_section(s, subjects[0], work)
    gpu = gpu_section(gpu_inputs, (1, s.batch), timing)
    load["end"] = os.getloadavg()

    s.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: s.out_dir / f"{s.name}.{ext}" for ext in ("json", "md", "png")}
    paths["frontier_png"] = s.out_dir / f"{s.name}-frontier.png"
    result = {
        "name": s.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": s.command,
        "machine": {**machine_info(), "load_average_1_5_15": load},
        "settings": {
            "threads": timing.threads,
            "runs": timing.runs_per_round * timing.rounds,
            "rounds": timing.rounds,
            "warmup_per_round": timing.warmup,
            "batches": [1, s.batch],
            "quick": s.quick,
            "params_file": str(s.params_file),
            "overrides": list(s.overrides),
            "evaluate": p.evaluate.model_dump(),
            "calibration": p.calibration.model_dump(),
            "quantize": p.quantize.model_dump(),
        },
        "methodology": METHODOLOGY,
        "headline": heads,
        "ablation": {
            "subject": main.label,
            "latency_budget": p.benchmark.latency_budget,
            "latency_caps": list(p.benchmark.latency_caps),
            "rows": rows,
        },
        "frontier": {"subject": main.label, "min_map_ratio": p.gates.min_map_ratio, **frontier},
        "graph_settings": {"subject": main.label, "artifact": "edgeslim-onnx-fp32-unpruned", "rows": settings_rows},
        "subjects": results,
        "flow_cost": flow,
        "gpu": gpu,
        "outputs": {k: str(v) for k, v in paths.items()},
    }
    result["wall_s"] = time.perf_counter() - started  # everything but writing the result files
    result = repo_relative(result)
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(markdown(result))
    plot_results(result, paths["png"])
    plot_frontier(result, paths["frontier_png"])
    return result

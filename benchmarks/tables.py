"""The Markdown people read, built from the same dict as the JSON machines read."""

from __future__ import annotations

from benchmarks.paired import SELF_CHECK_TOLERANCE

KIB = 1024
GIGA = 1e9
MEGA = 1e6
PERCENT = 100.0
DASH = "—"


def _f(value: float | None, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def _probe(entry: dict, key: str) -> dict:
    return entry.get("cpu", {}).get(key, {})


def _latency(entry: dict, key: str) -> str:
    probe = _probe(entry, key)
    if "error" in probe:
        return "error"
    lat = probe.get("latency_ms")
    return DASH if lat is None else f"{lat['median']:.2f} / {lat['p90']:.2f}"


def _memory(entry: dict) -> str:
    mem = _probe(entry, "batch1").get("memory")
    return DASH if mem is None else f"{mem['peak_delta_mib']:.0f} / {mem['peak_mib']:.0f}"


def _subject_table(subject: dict, batch: int) -> list[str]:
    big = f"batch{batch}"
    rows = [
        f"### {subject['label']}",
        "",
        f"| artifact | by | mAP50-95 | mAP50 | size KiB | GMACs | params M | b1 ms median / p90 | b1 img/s "
        f"| b1 dynamic-twin ms | b{batch} ms median / p90 | b{batch} img/s | peak RSS MiB Δ / total (b1) "
        f"| latency b1 × | throughput b{batch} × | size × | mAP50-95 × |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for e in subject["artifacts"]:
        if "absent" in e:
            rows.append(f"| {e['name']} | {e['producer']} | absent (below) |" + f" {DASH} |" * 14)
            notes.append(f"- {e['name']} absent: {e['absent']}")
            continue
        r = e.get("vs_ultralytics_onnx_fp32", {})
        cost = e["cost"]
        rows.append(
            f"| {e['name']} | {e['producer']} | {_f(e['map50_95'], '.4f')} | {_f(e['map50'], '.4f')} "
            f"| {e['size_bytes'] / KIB:.0f} | {cost['macs'] / GIGA:.3f} | {cost['params'] / MEGA:.3f} "
            f"| {_latency(e, 'batch1')} | {_f(_probe(e, 'batch1').get('throughput_ips'), '.1f')} "
            f"| {_latency(e, 'batch1_dynamic') if 'batch1_dynamic' in e['cpu'] else DASH} "
            f"| {_latency(e, big)} | {_f(_probe(e, big).get('throughput_ips'), '.1f')} | {_memory(e)} "
            f"| {_f(r.get('latency_batch1'), '.2f')} | {_f(r.get(f'throughput_{big}'), '.2f')} "
            f"| {_f(r.get('size'), '.2f')} | {_f(r.get('map50_95'), '.3f')} |"
        )
    untrained = next((e["map_note"] for e in subject["artifacts"] if e.get("map_note")), None)
    if untrained:
        notes.append(f"- no mAP: {untrained}")
    pe = subject.get("pruned_vs_unpruned_fp32", {})
    if "absent" not in pe and pe:
        notes.append(
            f"- **pruning** (edgeslim-onnx-fp32 vs edgeslim-onnx-fp32-unpruned): latency b1 **{_f(pe['latency_batch1'], '.2f')}×**, "
            f"b{batch} {_f(pe[f'latency_{big}'], '.2f')}×, MACs {pe['macs']:.2f}×, params {pe['params']:.2f}×, "
            f"size {pe['size']:.2f}×, mAP50-95 {_f(pe['map50_95'], '.3f')}×"
        )
    return rows + [""] + notes + [""]


def _flow_table(flow: dict) -> list[str]:
    if "error" in flow:
        return [f"Flow cost not measured: {flow['error']}", ""]
    b = flow["breakdown"]
    rows = ["| step | in the flow (s) | run directly (s) | overhead (s) |", "|---|---|---|---|"]
    for name, st in b["steps"].items():
        rows.append(f"| {name} | {st['flow_s']:.2f} | {_f(st['direct_s'], '.2f')} | {st['overhead_s']:.2f} |")
    first, rerun = flow["first_run"], flow["rerun_nothing_changed"]
    published = rerun["published"] or {}
    return rows + [
        "",
        f"- first run: **{first['wall_s']:.1f} s** in the flow + **{flow['prefect_startup_s']:.1f} s** Prefect start-up "
        f"= {b['total_s']:.1f} s; compute (same steps without Prefect/MLflow) {b['compute_s']:.1f} s",
        f"- orchestration + registry I/O: **{b['orchestration_and_registry_s']:.1f} s = "
        f"{PERCENT * b['orchestration_and_registry_share']:.0f}%** of the run (Prefect start-up {b['prefect_startup_s']:.1f} s, "
        f"task overhead {b['prefect_task_overhead_s']:.1f} s, registry steps pull+publish {b['registry_steps_s']:.1f} s, "
        f"flow bookkeeping outside steps {b['flow_outside_steps_s']:.1f} s)",
        f"- re-run with nothing changed: **{rerun['wall_s']:.1f} s** (published version reused: {published.get('reused', False)})",
        f"- registry: {flow['registry']}",
        "",
    ]


def _gpu_lines(gpu: dict) -> list[str]:
    if "skipped" in gpu:
        return [f"Skipped: {gpu['skipped']}.", ""]
    measured = gpu.get("measured")  # set when the section was measured later, on another machine (benchmarks.gpu_rerun)
    where = f" · measured {measured['created']} with `{measured['command']}`" if measured else ""
    rows = [
        f"Device: {gpu['device']}; ONNX Runtime providers: {', '.join(gpu['onnxruntime_providers'])}{where}",
        "",
        "| subject | artifact | runtime | batch | median ms | p90 ms | img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, artifacts in gpu["subjects"].items():
        for name, runtimes in artifacts.items():
            for runtime, batches in runtimes.items():
                if "skipped" in batches:
                    rows.append(f"| {key} | {name} | {runtime} | {DASH} | skipped: {batches['skipped']} | | |")
                    continue
                for batch, probe in batches.items():
                    lat = probe.get("latency_ms")
                    cells = (
                        f"{lat['median']:.2f} | {lat['p90']:.2f} | {probe['throughput_ips']:.1f}"
                        if lat
                        else f"error: {probe.get('error', '')[:80]} | | "
                    )
                    rows.append(f"| {key} | {name} | {runtime} | {batch} | {cells} |")
    return rows + [""]


def _ratio(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _ci(pair: list[float] | None) -> str:
    return "—" if not pair else f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _headline_lines(result: dict) -> list[str]:
    lines = [
        "## Headline",
        "",
        "Latency: the shipped artifact over ultralytics' FP32 ONNX export of the same model, batch 1, "
        f"{result['settings']['threads']} threads; the two called in turn (A B, B A, ...) in fresh probe processes, "
        "median of the per-block ratios, 95% bootstrap CI. "
        f"Self-check: ultralytics' FP32 export vs edgeslim's unpruned FP32 export (the same network), must be 1.00 ± {SELF_CHECK_TOLERANCE}; "
        "same file: ultralytics' export against itself, the method's own noise. "
        "mAP50-95 on the held-out val split, as a share of the converged reference (the subject's source) and "
        "of the equal-budget control (the unpruned source finetuned with the same recipe and epochs).",
        "",
        "| subject | target | ships | latency × ultralytics FP32 | 95% CI | self-check | same file | mAP50-95 | × converged | × control |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in result["headline"].values():
        check = h["self_check"]
        verdict = f"{check['ratio']:.3f} ({'ok' if check['ok'] else '**FAILED**'}) | {check['same_file']['ratio']:.3f}"
        if h.get("artifact") is None:
            lines.append(f"| {h['subject']} | {h['target']} | nothing: {h['absent']} | — | — | {verdict} | — | — | — |")
            continue
        lines.append(
            f"| {h['subject']} | {h['target']} | {h['artifact']} | **{_ratio(h['latency_ratio_vs_ultralytics_fp32'])}** | "
            f"{_ci(h['latency_ratio_ci'])} | {verdict} | {_ratio(h['map50_95'], '.4f')} | {_ratio(h['map_ratio_vs_converged'])} | "
            f"{_ratio(h['map_ratio_vs_control'])} |"
        )
    failed = [h["subject"] for h in result["headline"].values() if not h["self_check"]["ok"]]
    if failed:
        lines += ["", f"**Self-check failed** for {', '.join(failed)}: the machine was not quiet enough for these ratios."]
    return [*lines, ""]


def _lever_lines(rows: list[dict]) -> list[str]:
    """One table shape for the ablation and the frontier: a row per artifact, its cut, paired latency,
    mAP against both references, and whether its run passed every gate ("—" for the untrained floor)."""
    lines = [
        "| row | MACs cut | latency × ultralytics FP32 | 95% CI | ms | mAP50-95 | × converged | × control | gates |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "absent" in r:
            lines.append(f"| {r['row']} | — | — | — | — | — | — | — | {r['absent']} |")
            continue
        cut = "—" if r["macs_reduction"] is None else f"{100 * r['macs_reduction']:.1f}%"
        gates = {True: "pass", False: "fail", None: "—"}[r.get("gates_passed")]
        lines.append(
            f"| {r['row']} | {cut} | {_ratio(r['latency_ratio_vs_ultralytics_fp32'])} | {_ci(r['latency_ratio_ci'])} | "
            f"{r['latency_ms']:.2f} | {_ratio(r['map50_95'], '.4f')} | {_ratio(r['map_ratio_vs_converged'])} | "
            f"{_ratio(r['map_ratio_vs_control'])} | {gates} |"
        )
    return lines


def _ablation_lines(ablation: dict) -> list[str]:
    return [
        f"## Ablation: {ablation['subject']}",
        "",
        f"Each row adds one lever (latency-driven: prune.policy latency, caps {ablation['latency_caps']}, budget mode at "
        f"{ablation['latency_budget']} of the unpruned export). Latency as in the headline; mAP50-95 of that row's artifact. "
        "The floor row is the same architecture with every layer at its fewest channels, untrained: the most that "
        "cutting channels could buy here.",
        "",
        *_lever_lines(ablation["rows"]),
        "",
    ]


def _frontier_lines(frontier: dict) -> list[str]:
    fastest = frontier["fastest_passing"]
    return [
        f"## Accuracy against speed: {frontier['subject']}",
        "",
        "The recipe's FP32 export under the run's params and at other MACs targets (same distillation and finetuning), "
        f"each gated at {frontier['min_map_ratio']:g} of the converged reference. Latency as in the headline.",
        "",
        *_lever_lines(frontier["rows"]),
        "",
        f"Fastest that passes: **{fastest}**." if fastest else "No row passes its gates.",
        "",
    ]


def _graph_lines(graph: dict) -> list[str]:
    lines = [
        f"## ONNX Runtime graph settings and export options: {graph['subject']}, `{graph['artifact']}`",
        "",
        "Each setting against the default (ORT_ENABLE_ALL, onnxslim, fixed 1×3×H×W input), paired as above.",
        "",
        "| setting | latency × default | 95% CI | default ms | setting ms |",
        "|---|---|---|---|---|",
    ]
    for r in graph["rows"]:
        lines.append(f"| {r['setting']} | {r['ratio']:.3f} | {_ci(r['ci95'])} | {r['a_ms_median']:.2f} | {r['b_ms_median']:.2f} |")
    return [*lines, ""]


def markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    batch = s["batches"][-1]
    load = m["load_average_1_5_15"]
    lines = [
        f"# edgeslim benchmark `{result['name']}`",
        "",
        f"{result['created']} · {m['cpu']}, {m['logical_cores']} logical cores · {s['threads']} threads · "
        f"{s['runs']} timed runs per figure in {s['rounds']} interleaved rounds ({s['warmup_per_round']} warm-up each; "
        f"latency = the fastest round's median / p90) · load average (1 min) "
        f"{load['before_probes'][0]:.2f} before / {load['after_probes'][0]:.2f} after the CPU probes · "
        f"whole benchmark {result['wall_s']:.0f} s",
        "",
        f"Command: `{result['command']}`",
        "",
        *_headline_lines(result),
        *_ablation_lines(result["ablation"]),
        *_frontier_lines(result["frontier"]),
        *_graph_lines(result["graph_settings"]),
        "## Every artifact: CPU (ONNX Runtime CPU EP / PyTorch eager)",
        "",
        f"× columns are ratios to `ultralytics-onnx-fp32` of the same model (latency/size below 1 = smaller, "
        f'throughput above 1 = faster). b{batch} and "dynamic-twin" run on a dynamic-batch re-export of each ONNX '
        f"artifact (static batch-1 files cannot run batch {batch}); b1 runs the shipped file. Peak RSS: Δ = what "
        f"loading and running the artifact added to the process, total = whole probe process. MACs of ONNX "
        f"artifacts are those of the fused torch model they were exported from.",
        "",
    ]
    for subject in result["subjects"]:
        lines += _subject_table(subject, batch)
    lines += [
        "## Cost of the compress flow itself",
        "",
        "Measured with `prune.enabled=false`: finetuning is the same compute in and out of the flow.",
        "",
    ] + _flow_table(result["flow_cost"])
    lines += ["## GPU", ""] + _gpu_lines(result["gpu"])
    lines += [f"Plot: `{result['outputs']['png']}` · JSON: `{result['outputs']['json']}`", ""]
    return "\n".join(lines)

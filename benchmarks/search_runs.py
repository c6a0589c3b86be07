"""``python -m benchmarks.search_runs --report RUN/report.json [--report ...]``: what the search of one
or more compress runs of the same source explored, and what each run's chosen variant became.

Why: the search's own table (report.md) shows one run. A lever the default space leaves out (an input
size, a deeper cut) is measured by a second run with another ``search.*`` space on the same source;
this puts the runs side by side, so the Pareto table shows where the limit lies and which lever
bought what: every candidate's untrained latency (a ratio to the source's own export on its runtime,
in paired rounds within its run) and short-finetune score, then each chosen variant's full-finetune
mAP against the source and the equal-budget control, its gates, and whether the run published.

Latency ratios are within a run only (each run's search timed its candidates against the source in
one set of paired rounds); the header names the CPU and its flags. Writes
``benchmarks/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.paths import portable_command, portable_path, results_main

PROG = "python -m benchmarks.search_runs"


def run_summary(report: dict, path: Path) -> dict:
    """One run: its search table, its choice, and the chosen variant's fate after the full finetune."""
    details = report["details"]
    search = details["search"]
    stages = {s["name"]: s["map50_95"] for s in report["stages"]}
    ratios = details.get("map_ratios_vs", {})
    published = all(g["passed"] for g in report["gates"].values()) and report.get("published") is not None
    shipped = [s["format"] for s in details.get("target", {}).get("shipped", [])] if published else []
    return {
        "report": portable_path(path),
        "input": details.get("input"),
        "search_wall_s": search["wall_s"],
        "chosen": search["chosen"],
        "candidates": search["candidates"],
        "finetuned_map50_95": stages.get("finetuned"),
        "source_map50_95": stages.get("baseline"),
        "control_map50_95": stages.get("control"),
        "finetuned_vs_source": ratios.get("baseline", {}).get("finetuned"),
        "finetuned_vs_control": ratios.get("control", {}).get("finetuned"),
        "gates": {name: g["passed"] for name, g in report["gates"].items()},
        "published": published,
        "shipped": shipped,
        "convergence": details.get("source", {}).get("convergence"),
    }


def run(args: argparse.Namespace) -> dict:
    from edgeslim.runtime.cpu import cpu_model, machine_profile, notable_flags

    runs = [run_summary(json.loads(Path(r).read_text()), Path(r)) for r in args.report]
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": portable_command(["python", "-m", "benchmarks.search_runs", *sys.argv[1:]], None),
        "machine": {"cpu": cpu_model(), "cpu_flags": notable_flags(), "profile": machine_profile()},
        "runs": runs,
    }


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# The search on one source, run by run ({result['when']})",
        "",
        f"CPU: {m['cpu']}; flags {', '.join(m['cpu_flags']) or 'none of note'} (profile `{m['profile']}`). Latency ratios are "
        "untrained candidates against the source's own export on the same runtime, paired rounds within each run's search.",
        "",
        "| run | candidate | x source's export (untrained) | short-finetune mAP ratio | status |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        for c in r["candidates"]:
            lines.append(f"| {i} | `{c['candidate']}` | {c['ratio']:.3f} | {_ratio(c['map_ratio'])} | {c['status']} |")
    lines += [
        "",
        "| run | input px | chosen | search s | full finetune mAP50-95 | x source | x control | published | shipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        size = r["input"]["input_size"] if r["input"] else "—"
        chosen = r["chosen"]["variant"] if r["chosen"] else "nothing"
        failed = [g for g, ok in r["gates"].items() if not ok]
        verdict = "yes" if r["published"] else f"no (failed: {', '.join(failed)})"
        lines.append(
            f"| {i} | {size} | `{chosen}` | {r['search_wall_s']:.0f} | {_ratio(r['finetuned_map50_95'])} | "
            f"{_ratio(r['finetuned_vs_source'])} | {_ratio(r['finetuned_vs_control'])} | {verdict} | {', '.join(r['shipped']) or '—'} |"
        )
    lines += ["", *(f"Run {i}: `{r['report']}`" for i, r in enumerate(result["runs"], 1)), "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="append", required=True, help="a compress run's report.json (repeat for each run)")
    parser.add_argument("--name", default="search-runs", help="results file name (benchmarks/results/<name>.json, .md)")
    return results_main(PROG, parser, run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

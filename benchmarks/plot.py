"""The accuracy/latency/size pictures of a benchmark, drawn with the flow's own Pareto plot
(edgeslim.plots) so they read like the one in each MLflow run: the scored artifacts of the trained
subjects, and the ablation and frontier rows as shares of the converged reference."""

from __future__ import annotations

from pathlib import Path

from edgeslim.plots import Point, pareto_plot


def plot_results(result: dict, out: Path) -> Path | None:
    """Scored artifacts of the trained subjects, each named with its subject."""
    trained = [s for s in result["subjects"] if s["trained"]]
    points = []
    for subject in trained:
        for e in subject["artifacts"]:
            latency = e.get("cpu", {}).get("batch1", {}).get("latency_ms")
            if e.get("map50_95") is not None and latency is not None:
                points.append(Point(f"{subject['key']}: {e['name']}", e["map50_95"], latency["median"], e["size_bytes"]))
    if not points:
        return None
    s = result["settings"]
    title = f"{', '.join(s['label'] for s in trained)}: accuracy vs latency (marker area = file size)"
    xlabel = f"CPU latency, batch 1 (ms, log scale; median of the fastest of {s['rounds']} rounds, {s['threads']} threads)"
    return pareto_plot(points, title, out, xlabel=xlabel)


def plot_frontier(result: dict, out: Path) -> Path | None:
    """Every ablation and frontier row with both figures: mAP × converged against latency × ultralytics'
    FP32 export (paired ratios). Rows that are the same file (the run's own params is one ablation
    row too) are one point with both names, at the first row's figures."""
    by_file: dict[str, list[dict]] = {}
    for r in [*result["ablation"]["rows"], *result["frontier"]["rows"]]:
        if r.get("map_ratio_vs_converged") is not None:
            by_file.setdefault(r["artifact"], []).append(r)
    if not by_file:
        return None
    points = [
        Point(
            " = ".join(r["row"] for r in rows),
            rows[0]["map_ratio_vs_converged"],
            rows[0]["latency_ratio_vs_ultralytics_fp32"],
            rows[0]["size_bytes"],
        )
        for rows in by_file.values()
    ]
    title = f"What each lever buys (gate: {result['frontier']['min_map_ratio']:g} × converged); subject: see the .md"
    xlabel = "latency × ultralytics' FP32 export (paired ratio, log scale)"
    return pareto_plot(points, title, out, xlabel=xlabel, ylabel="mAP50-95 × the converged reference")

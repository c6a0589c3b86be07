"""The accuracy/latency/size picture of a benchmark: the flow's own Pareto plot (edgeslim.plots), over
the scored artifacts of the trained subjects, so it reads like the one in each MLflow run."""

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

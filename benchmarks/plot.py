"""The accuracy/latency/size picture of a benchmark, drawn with the flow's own Pareto plot."""
from __future__ import annotations

from pathlib import Path

from edgeslim.plots import Point, pareto_plot


def plot_results(result: dict, out: Path) -> Path | None:
    """mAP50-95 vs CPU batch-1 median latency of every scored artifact, marker area ∝ file size.

    Only trained subjects have a mAP; the untrained reference has no place on this plot (its speed
    and size are in the table).
    """
    trained = [s for s in result["subjects"] if s["trained"]]
    points = []
    for subject in trained:
        for e in subject["artifacts"]:
            latency = e.get("cpu", {}).get("batch1", {}).get("latency_ms")
            if e.get("map50_95") is not None and latency is not None:
                points.append(Point(e["name"], e["map50_95"], latency["median"], e["size_bytes"]))
    if not points:
        return None
    labels = ", ".join(s["label"] for s in trained)
    title = f"{labels}: held-out mAP50-95 vs CPU latency, {result['settings']['threads']} threads (marker area = file size)"
    return pareto_plot(points, title, out)

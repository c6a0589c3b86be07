"""The accuracy/latency/size picture of a benchmark: mAP50-95 vs CPU latency, marker area ∝ file size.

Why not edgeslim.plots.pareto_plot as is: here several artifacts share a mAP and nearly a latency
(the two FP32 ONNX exports of one model), and its fixed label offset prints their labels on top of
each other; labels of nearby points are stacked instead. Marker scale and Pareto front are the
flow's own, so the benchmark's picture reads like the one in each MLflow run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from edgeslim.plots import MARKER_AREA_PER_MIB, MIN_MARKER_AREA, Point, pareto_front

FIGSIZE_IN = (8, 5)
DPI = 120
# A label is about a third of the axis wide: points this close (share of each axis span) stack labels.
NEAR_X = 0.4
NEAR_Y = 0.08
LABEL_OFFSET_PT = (24, 6)  # right of the largest markers' radius
LABEL_STEP_PT = -24  # stacked labels go down, inside the axes
FONT_SIZE = 8
TITLE_SIZE = 10
MARGIN = 0.25
BYTES_PER_KIB = 1024


def _label_offsets(points: list[Point]) -> list[tuple[int, int]]:
    """Offset of each label in points: stacked downwards when earlier points are near."""
    xs, ys = [p.latency_ms for p in points], [p.map50_95 for p in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    offsets = []
    for i, p in enumerate(points):
        near = sum(
            abs(p.latency_ms - q.latency_ms) / span_x < NEAR_X and abs(p.map50_95 - q.map50_95) / span_y < NEAR_Y for q in points[:i]
        )
        offsets.append((LABEL_OFFSET_PT[0], LABEL_OFFSET_PT[1] + LABEL_STEP_PT * near))
    return offsets


def plot_results(result: dict, out: Path) -> Path | None:
    """Scored artifacts of the trained subjects; the untrained reference has no mAP to plot."""
    trained = [s for s in result["subjects"] if s["trained"]]
    points = []
    for subject in trained:
        for e in subject["artifacts"]:
            latency = e.get("cpu", {}).get("batch1", {}).get("latency_ms")
            if e.get("map50_95") is not None and latency is not None:
                points.append(Point(e["name"], e["map50_95"], latency["median"], e["size_bytes"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE_IN, dpi=DPI)
    for p, offset in zip(points, _label_offsets(points)):
        ax.scatter(p.latency_ms, p.map50_95, s=max(MIN_MARKER_AREA, MARKER_AREA_PER_MIB * p.size_bytes / 2**20), alpha=0.6)
        ax.annotate(
            f"{p.label} ({p.size_bytes / BYTES_PER_KIB:.0f} KiB)",
            (p.latency_ms, p.map50_95),
            textcoords="offset points",
            xytext=offset,
            fontsize=FONT_SIZE,
            arrowprops={"arrowstyle": "-", "linewidth": 0.5},
        )
    front = sorted(pareto_front(points), key=lambda p: p.latency_ms)
    if len(front) > 1:
        ax.plot([p.latency_ms for p in front], [p.map50_95 for p in front], "k--", linewidth=0.8, label="Pareto front")
        ax.legend(loc="lower right", fontsize=FONT_SIZE)
    s = result["settings"]
    ax.set_xlabel(f"CPU latency, batch 1 (ms; median of the fastest of {s['rounds']} rounds, {s['threads']} threads)")
    ax.set_ylabel("mAP50-95, held-out val")
    ax.set_title(f"{', '.join(s['label'] for s in trained)}: accuracy vs latency (marker area = file size)", fontsize=TITLE_SIZE)
    ax.grid(alpha=0.3)
    ax.margins(MARGIN)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

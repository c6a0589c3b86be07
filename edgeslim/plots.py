"""Plots people would rather look at than read: the accuracy/latency/size trade-off of a run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

if TYPE_CHECKING:
    from edgeslim.report import StageResult

MARKER_AREA_PER_MIB = 400.0  # scatter area per MiB of artifact, so size reads at a glance
MIN_MARKER_AREA = 30.0


@dataclass(frozen=True)
class Point:
    label: str
    map50_95: float
    latency_ms: float
    size_bytes: int


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both latency (lower) and mAP (higher)."""
    return [
        p
        for p in points
        if not any(
            q.latency_ms <= p.latency_ms and q.map50_95 >= p.map50_95 and (q.latency_ms, q.map50_95) != (p.latency_ms, p.map50_95)
            for q in points
        )
    ]


def _area(p: Point) -> float:
    return max(MIN_MARKER_AREA, MARKER_AREA_PER_MIB * p.size_bytes / 2**20)


def stage_points(stages: Iterable[StageResult]) -> list[Point]:
    """The stages that have all three figures a point needs (mAP, latency, size)."""
    return [
        Point(s.name, s.map50_95, s.latency_ms, s.size_bytes)
        for s in stages
        if s.map50_95 is not None and s.latency_ms is not None and s.size_bytes is not None
    ]


# Where a label may sit, relative to its point (offset in points, alignment), tried in this order;
# then further down, stacked, with a leader line back to the point.
LABEL_OFFSETS_PT = ((8, 6, "left", "bottom"), (8, -6, "left", "top"), (-8, 6, "right", "bottom"), (-8, -6, "right", "top"))
LABEL_STACK_STEP_PT = -24
LABEL_STACK_TRIES = 12
LABEL_FONT_SIZE = 8
LATENCY_XLABEL = "CPU latency, batch 1 (ms, log scale, lower is better)"


def map_ylabel(label: str) -> str:
    """The mAP axis, naming which mAP (``mask mAP50-95 on held-out val ...``)."""
    return f"{label} on held-out val (higher is better)"


MAP_YLABEL = map_ylabel("mAP50-95")


def place_labels(ax: Axes, labels: list[tuple[str, tuple[float, float]]]) -> list[Text]:
    """Annotate each ``(text, (x, y))`` where its box overlaps no label placed before it.

    Artifacts of one run often sit close together (an FP32 ONNX and the checkpoint it came from
    share a mAP and nearly a latency): a fixed offset prints their labels over each other.
    """
    fig = ax.figure
    fig.canvas.draw()  # a renderer, and final axis limits, to measure text boxes against
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Text] = []
    boxes: list[Bbox] = []
    stacked = [
        (LABEL_OFFSETS_PT[1][0], LABEL_OFFSETS_PT[1][1] + LABEL_STACK_STEP_PT * k, "left", "top") for k in range(1, LABEL_STACK_TRIES)
    ]
    for text, xy in labels:
        for n, (dx, dy, ha, va) in enumerate((*LABEL_OFFSETS_PT, *stacked)):
            leader = {"arrowstyle": "-", "linewidth": 0.5} if n >= len(LABEL_OFFSETS_PT) else None
            ann = ax.annotate(
                text, xy, textcoords="offset points", xytext=(dx, dy), ha=ha, va=va, fontsize=LABEL_FONT_SIZE, arrowprops=leader
            )
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in boxes) or n == len(LABEL_OFFSETS_PT) + len(stacked) - 1:
                break
            ann.remove()
        placed.append(ann)
        boxes.append(box)
    return placed


def pareto_figure(
    points: list[Point], title: str, reference: Point | None = None, xlabel: str = LATENCY_XLABEL, ylabel: str = MAP_YLABEL
) -> Figure:
    """mAP50-95 vs CPU latency, marker area ∝ file size, Pareto front joined by a line, labels that
    do not overlap. ``reference`` (the previous candidate) is drawn hollow."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for p in points:
        ax.scatter(p.latency_ms, p.map50_95, s=_area(p), alpha=0.6)
    labelled = [(f"{p.label}\n{p.size_bytes / 1024:.0f} KiB", p) for p in points]
    if reference:
        ax.scatter(reference.latency_ms, reference.map50_95, s=_area(reference), facecolors="none", edgecolors="black", marker="D")
        labelled.append((reference.label, reference))
    front = sorted(pareto_front(points), key=lambda p: p.latency_ms)
    if len(front) > 1:
        ax.plot([p.latency_ms for p in front], [p.map50_95 for p in front], "k--", linewidth=0.8, label="Pareto front")
        ax.legend(loc="lower right", fontsize=LABEL_FONT_SIZE)
    ax.set_xscale("log")  # artifacts of one run often differ in latency by an order of magnitude
    for axis_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 1.5, not 1.5×10⁰, over less than a decade
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.25)
    fig.tight_layout()
    labelled.sort(key=lambda item: -item[1].map50_95)  # top first: stacked labels then go down, into the plot
    place_labels(ax, [(text, (p.latency_ms, p.map50_95)) for text, p in labelled])
    return fig


def pareto_plot(
    points: list[Point], title: str, out: Path, reference: Point | None = None, xlabel: str = LATENCY_XLABEL, ylabel: str = MAP_YLABEL
) -> Path:
    """:func:`pareto_figure`, saved as ``out``."""
    fig = pareto_figure(points, title, reference, xlabel, ylabel)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def channels_plot(before: dict[str, int], after: dict[str, int], out: Path) -> Path:
    """Per-conv output channels before (grey) and kept after pruning (colour), in network order.

    Shows at a glance where the pruning policy cut (deep layers hard, shallow ones lightly) and
    which convs were protected (head outputs: bars of equal height).
    """
    names = list(before)
    kept = [after.get(n, 0) for n in names]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.12 * len(names)), 4.0), dpi=120)
    x = range(len(names))
    ax.bar(x, [before[n] for n in names], color="0.8", label="before")
    ax.bar(x, kept, color="tab:blue", label="kept")
    ax.set_xticks(list(x), names, rotation=90, fontsize=5)
    ax.set_ylabel("output channels")
    total_before, total_after = sum(before.values()), sum(kept)
    ax.set_title(f"channels kept per conv: {total_after}/{total_before} ({total_after / max(total_before, 1):.0%})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

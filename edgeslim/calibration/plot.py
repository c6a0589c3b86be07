"""Histogram plot of the pool, the curated set and a random sample of the same size, per statistic.

Densities, not counts, so a 64-image set and a 160-image pool share one axis; a person sees at a
glance whether the calibration set reaches the tails the pool has.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from edgeslim.calibration.stats import STAT_NAMES, ImageStats

HIST_BINS = 20  # per statistic; the pool's range split evenly
PANEL_COLUMNS = 3
POOL_COLOR = "0.75"  # the pool in grey; selections take matplotlib's C0, C1, ... in every panel


def coverage_plot(stats: list[ImageStats], selections: dict[str, list[int]], class_names: tuple[str, ...], out: Path) -> Path:
    """One panel per statistic plus one of objects per class; ``selections``: label → pool indices."""
    panels = len(STAT_NAMES) + 1
    rows = -(-panels // PANEL_COLUMNS)
    fig, axes = plt.subplots(rows, PANEL_COLUMNS, figsize=(4 * PANEL_COLUMNS, 3 * rows), dpi=100)
    axes = axes.ravel()
    for ax, name in zip(axes, STAT_NAMES):
        values = np.array([s.value(name) for s in stats])
        edges = np.histogram_bin_edges(values, bins=HIST_BINS)
        ax.hist(values, bins=edges, density=True, color=POOL_COLOR, label=f"pool ({len(values)})")
        for j, (label, picked) in enumerate(selections.items()):
            ax.hist(
                values[picked], bins=edges, density=True, histtype="step", linewidth=1.5, color=f"C{j}", label=f"{label} ({len(picked)})"
            )
        ax.set_title(name, fontsize=9)
    counts = np.array([s.class_counts for s in stats], dtype=float)
    ax = axes[len(STAT_NAMES)]
    width = 0.8 / (len(selections) + 1)
    x = np.arange(len(class_names))
    columns = [(POOL_COLOR, list(range(len(stats)))), *((f"C{j}", picked) for j, picked in enumerate(selections.values()))]
    for j, (color, rows_picked) in enumerate(columns):
        share = counts[rows_picked].sum(axis=0)
        ax.bar(x + j * width, share / max(share.sum(), 1.0), width, color=color)
    ax.set_xticks(x + width * len(selections) / 2, class_names, rotation=30, fontsize=7)
    ax.set_title("share of objects per class", fontsize=9)
    for extra in axes[panels:]:
        extra.axis("off")
    axes[0].legend(fontsize=7)
    fig.suptitle("calibration set vs pool", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

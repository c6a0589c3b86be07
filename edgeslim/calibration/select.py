"""Which pool images calibrate: cover every stratum first, then spread out in feature space.

Why two phases: the strata (tails of each statistic, every class) name the conditions a random
sample of a few dozen images can miss entirely; k-center greedy on backbone embeddings then spends
the rest of the budget where the pool is least represented, instead of on near-duplicates. Both
phases are deterministic: ties go to the lowest index of the sorted pool.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

from edgeslim.calibration.stats import STAT_NAMES, ImageStats

LOW, MID, HIGH = "low", "mid", "high"
CENTER, DIVERSITY, RANDOM = "center", "diversity", "random"


@dataclass(frozen=True)
class Pick:
    index: int
    reason: str  # CENTER, DIVERSITY, RANDOM, or "covers <stratum>, ..."


def stat_bins(values: np.ndarray, quantiles: tuple[float, float]) -> list[str]:
    """low / mid / high per image: at or below the pool's low quantile, at or above its high one."""
    lo, hi = np.quantile(values, quantiles)
    return [LOW if v <= lo else HIGH if v >= hi else MID for v in values]


def assign_strata(stats: list[ImageStats], quantiles: tuple[float, float], class_names: tuple[str, ...]) -> list[dict]:
    """Per image: its bin of every statistic and the classes it shows (what the manifest records)."""
    bins = {name: stat_bins(np.array([s.value(name) for s in stats]), quantiles) for name in STAT_NAMES}
    return [
        {**{name: bins[name][i] for name in STAT_NAMES}, "classes": [class_names[c] for c, n in enumerate(s.class_counts) if n]}
        for i, s in enumerate(stats)
    ]


def strata_keys(stratum: dict) -> frozenset[str]:
    """``brightness:low``-style keys of one image's strata, classes as ``class:<name>``."""
    return frozenset([*(f"{name}:{stratum[name]}" for name in STAT_NAMES), *(f"class:{c}" for c in stratum["classes"])])


def curate(embeddings: np.ndarray, strata: list[frozenset[str]], k: int, min_per_stratum: int) -> list[Pick]:
    """Start at the most typical image, fill every stratum's quota, then k-center greedy.

    Coverage phase: among images that fill the most unmet quotas, the one farthest (in embedding
    space) from everything picked so far. A stratum smaller than its quota asks for all it has.
    """
    n = len(strata)
    sizes = Counter(key for keys in strata for key in keys)
    need = {key: min(min_per_stratum, size) for key, size in sizes.items()}
    chosen = np.zeros(n, dtype=bool)
    nearest = np.full(n, np.inf)  # distance of each image to its nearest pick
    picks: list[Pick] = []

    def take(i: int, reason: str) -> None:
        nonlocal nearest
        chosen[i] = True
        picks.append(Pick(i, reason))
        nearest = np.minimum(nearest, np.linalg.norm(embeddings - embeddings[i], axis=1))
        for key in strata[i]:
            need[key] = max(0, need[key] - 1)

    take(int(np.argmin(np.linalg.norm(embeddings - embeddings.mean(axis=0), axis=1))), CENTER)
    while len(picks) < k:
        gains = np.array([-1 if chosen[i] else sum(need[key] > 0 for key in strata[i]) for i in range(n)])
        best = int(gains.max())
        candidates = gains == best if best > 0 else ~chosen
        i = int(np.argmax(np.where(candidates, nearest, -1.0)))
        take(i, f"covers {', '.join(sorted(key for key in strata[i] if need[key] > 0))}" if best > 0 else DIVERSITY)
    return picks


def random_picks(n: int, k: int, seed: int) -> list[Pick]:
    """The seeded random sample curation is compared with (and the ``random`` method's choice)."""
    return [Pick(i, RANDOM) for i in sorted(random.Random(seed).sample(range(n), k))]

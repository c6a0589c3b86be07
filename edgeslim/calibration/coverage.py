"""How well a selection represents its pool: the figures that compare curated with random.

- strata covered: strata (statistic bins, classes) of the pool with at least one selected image;
- range coverage: share of the pool's min..max span of each statistic the selection spans
  (a calibration set without the darkest boards cannot set the ranges those boards need);
- feature radius / mean distance: how far the worst-served and the average pool image are from
  their nearest selected image in embedding space (lower = better represented).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from edgeslim.calibration.stats import STAT_NAMES, ImageStats


def coverage(picked: list[int], strata: list[frozenset[str]], stats: list[ImageStats], embeddings: np.ndarray) -> dict:
    pool = Counter(key for keys in strata for key in keys)
    got = Counter(key for i in picked for key in strata[i])
    ranges = {}
    for name in STAT_NAMES:
        all_values = np.array([s.value(name) for s in stats])
        chosen = all_values[picked]
        span = all_values.max() - all_values.min()
        ranges[name] = round(float((chosen.max() - chosen.min()) / span), 4) if span > 0 else 1.0
    nearest = np.full(len(embeddings), np.inf)
    for i in picked:  # one pick at a time: memory stays O(pool), whatever K
        nearest = np.minimum(nearest, np.linalg.norm(embeddings - embeddings[i], axis=1))
    return {
        "images": len(picked),
        "strata_covered": sum(1 for key in pool if got[key]),
        "strata_total": len(pool),
        "missed_strata": sorted(key for key in pool if not got[key]),
        "range_coverage": ranges,
        "mean_range_coverage": round(float(np.mean(list(ranges.values()))), 4),
        "feature_radius": round(float(nearest.max()), 4),
        "feature_mean_distance": round(float(nearest.mean()), 4),
        "per_stratum": {key: got[key] for key in sorted(pool)},
    }

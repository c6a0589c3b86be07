"""How sure a mAP ratio is: a paired bootstrap over val images.

Why: with 96 val images a 95% gate sits inside the mAP's own noise, so a ratio of 0.96 may be a
model that keeps 0.90 or 1.02. Resampling the val images with replacement, and scoring the
candidate and the reference on the *same* resample each time, gives an interval for their ratio
that accounts for which images happened to be in the split. mAP is recomputed with ultralytics'
own ``ap_per_class`` from the per-image matches its validator made, so the full-sample figure is
exactly the validator's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ultralytics.utils.metrics import compute_ap

from edgeslim.config import BootstrapParams

KEYS = ("tp", "conf", "pred_cls", "target_cls")  # what ap_per_class reads, per image as the validator kept it
EPS = 1e-16  # ap_per_class's guard on the recall denominator


@dataclass(frozen=True)
class PerImage:
    """The validator's matches, one entry per val image in its order."""

    names: list[str]
    stats: dict[str, list[np.ndarray]]

    def save(self, path: Path) -> Path:
        """One array per key, every image's rows in turn, and where each image's rows start."""
        path.parent.mkdir(parents=True, exist_ok=True)
        preds, targets = (np.cumsum([0, *(len(a) for a in self.stats[k])]) for k in ("conf", "target_cls"))
        tp, conf, pred_cls, target_cls = (np.concatenate(self.stats[k], 0) for k in KEYS)
        np.savez_compressed(
            path, names=np.array(self.names), preds=preds, targets=targets, tp=tp, conf=conf, pred_cls=pred_cls, target_cls=target_cls
        )
        return path

    @classmethod
    def load(cls, path: Path) -> PerImage:
        with np.load(path) as z:
            names = [str(n) for n in z["names"]]
            cut = {"tp": z["preds"], "conf": z["preds"], "pred_cls": z["preds"], "target_cls": z["targets"]}
            return cls(names, {k: [z[k][cut[k][i] : cut[k][i + 1]] for i in range(len(names))] for k in KEYS})

    def scorer(self) -> Resampled:
        return Resampled(self)


class Resampled:
    """mAP50-95 of one model under image weights (how often a resample drew each image).

    A resample that draws an image twice counts its predictions and labels twice; weighting each
    by its image's count gives the mAP of the concatenated resample without re-sorting anything:
    the predictions are sorted by confidence once (as ``ap_per_class`` sorts them) and split by
    class, and each resample is a weighted cumulative sum. With every weight 1 this is exactly
    ultralytics' ``ap_per_class`` mean, the validator's mAP50-95."""

    def __init__(self, per_image: PerImage) -> None:
        s = per_image.stats
        self.n_images = len(per_image.names)
        image = np.concatenate([np.full(len(c), i) for i, c in enumerate(s["conf"])]).astype(int)
        order = np.argsort(-np.concatenate(s["conf"]))
        tp, cls, image = np.concatenate(s["tp"], 0)[order].astype(float), np.concatenate(s["pred_cls"])[order], image[order]
        target_cls = np.concatenate(s["target_cls"])
        target_image = np.concatenate([np.full(len(c), i) for i, c in enumerate(s["target_cls"])]).astype(int)
        self.classes = [
            (tp[cls == c], image[cls == c], np.bincount(target_image[target_cls == c], minlength=self.n_images))
            for c in np.unique(target_cls)
        ]

    def map50_95(self, weights: np.ndarray | None = None) -> float:
        """The mAP with image ``i`` counted ``weights[i]`` times (None: each once)."""
        w = np.ones(self.n_images) if weights is None else np.asarray(weights, dtype=float)
        aps = []
        for tp, image, labels_per_image in self.classes:
            n_labels = float(labels_per_image @ w)
            if n_labels == 0:  # no label of this class drawn: the class is absent from this resample, as in ap_per_class
                continue
            wp = w[image]
            keep = wp > 0
            if not keep.any():
                aps.append(0.0)
                continue
            tp_w, wp = tp[keep] * wp[keep, None], wp[keep]
            tpc = tp_w.cumsum(0)
            fpc = (wp[:, None] - tp_w).cumsum(0)
            recall, precision = tpc / (n_labels + EPS), tpc / (tpc + fpc)
            aps.append(float(np.mean([compute_ap(recall[:, j], precision[:, j])[0] for j in range(tp.shape[1])])))
        return float(np.mean(aps)) if aps else 0.0


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    samples: int
    images: int

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        return f"{self.level:.0%} CI {self.low:.3f}–{self.high:.3f} ({self.samples} paired resamples of {self.images} val images)"


def ratio_intervals(candidates: dict[str, PerImage], reference: PerImage, b: BootstrapParams) -> dict[str, Interval]:
    """Per candidate, the percentile interval of mAP(candidate) / mAP(reference) over the same paired
    resamples of the val images (the reference's resampled mAPs computed once for all).

    Each must have been scored on the reference's images in the same order (one split, one validator)."""
    n = len(reference.names)
    for name, c in candidates.items():
        if c.names != reference.names:
            raise ValueError(f"{name} was scored on other val images than the reference ({len(c.names)} vs {n}): no paired bootstrap")
    weights = [np.bincount(d, minlength=n) for d in np.random.default_rng(b.seed).integers(0, n, (b.samples, n))]
    ref = reference.scorer()
    ref_maps = np.array([ref.map50_95(w) for w in weights])
    tail = (1 - b.level) / 2
    out = {}
    for name, c in candidates.items():
        scorer = c.scorer()
        ratios = [scorer.map50_95(w) / r if r > 0 else 0.0 for w, r in zip(weights, ref_maps, strict=True)]
        low, high = np.quantile(ratios, [tail, 1 - tail])
        out[name] = Interval(float(low), float(high), b.level, b.samples, n)
    return out

"""The calibration step: measure the pool, pick K images, write the manifest and the coverage report.

The manifest (path, sha256, statistics, stratum and why each image was picked) is what the flow
logs and DVC tracks; its digest (over image contents only, so it is the same wherever the pool
lives) goes into the published version's lineage. The coverage report puts the selection next to
a seeded random sample of the same size, so every run shows what curation bought.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgeslim.calibration.coverage import coverage
from edgeslim.calibration.plot import coverage_plot
from edgeslim.calibration.pool import PoolMeasure, measure_pool
from edgeslim.calibration.probe import ModelProbe
from edgeslim.calibration.select import assign_strata, curate, random_picks, strata_keys
from edgeslim.config import CalibrationParams
from edgeslim.data.tasks import Task
from edgeslim.errors import DataError

MANIFEST_NAME = "calibration_manifest.json"
PLOT_NAME = "calibration_coverage.png"
# Coverage figures copied flat into the step's report (MLflow metrics), selection and random side by side.
SUMMARY_FIGURES = ("strata_covered", "mean_range_coverage", "feature_radius", "feature_mean_distance")


@dataclass(frozen=True)
class CalibrationSet:
    images: list[Path]
    sha256: str  # digest of the selected images' contents (lineage)
    manifest: Path
    plot: Path
    report: dict  # flat figures for metrics, plus both coverage reports


def build_calibration_set(
    pool: Path | list[Path],
    fp32: Path,
    imgsz: int,
    class_names: tuple[str, ...],
    task: Task,
    cp: CalibrationParams,
    out_dir: Path,
    threads: int,
) -> CalibrationSet:
    """Measure ``pool`` with the FP32 ONNX ``task`` model and select the calibration set into ``out_dir``."""
    probe = ModelProbe(fp32, len(class_names), task, cp.pred_conf, cp.pred_iou, threads)
    return select_calibration_set(measure_pool(pool, probe, imgsz, len(class_names), task), class_names, cp, out_dir)


def select_calibration_set(m: PoolMeasure, class_names: tuple[str, ...], cp: CalibrationParams, out_dir: Path) -> CalibrationSet:
    """Pick ``cp.num_images`` of a measured pool (``cp.method``), write manifest and histogram plot."""
    n = len(m.images)
    if cp.num_images > n:
        raise DataError(f"calibration wants {cp.num_images} images but pool {m.folder} has only {n} readable ones")
    strata = assign_strata(m.stats, cp.strata_quantiles, class_names)
    keys = [strata_keys(s) for s in strata]
    random_sample = random_picks(n, cp.num_images, cp.seed)
    picks = curate(m.embeddings, keys, cp.num_images, cp.min_per_stratum) if cp.method == "curated" else random_sample
    picked = [p.index for p in picks]
    reports = {
        "selected": coverage(picked, keys, m.stats, m.embeddings),
        "random": coverage([p.index for p in random_sample], keys, m.stats, m.embeddings),
    }
    entries = [
        {
            "path": str(m.images[p.index]),
            "sha256": hashlib.sha256(m.images[p.index].read_bytes()).hexdigest(),
            "stats": m.stats[p.index].as_dict(),
            "stratum": strata[p.index],
            "reason": p.reason,
        }
        for p in picks
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST_NAME
    manifest.write_text(
        json.dumps(
            {
                "pool": str(m.folder),
                "method": cp.method,
                "num_images": cp.num_images,
                "pool_images": n,
                "objects_from": m.objects_from,
                "strata_quantiles": list(cp.strata_quantiles),
                "min_per_stratum": cp.min_per_stratum,
                "random_seed": cp.seed,
                "skipped": m.skipped,
                "coverage": reports,
                "images": entries,
            },
            indent=1,
        )
        + "\n"
    )
    plot = coverage_plot(
        m.stats, {cp.method: picked, f"random (seed {cp.seed})": [p.index for p in random_sample]}, class_names, out_dir / PLOT_NAME
    )
    digest = hashlib.sha256("\n".join(sorted(str(e["sha256"]) for e in entries)).encode()).hexdigest()
    report = {
        "method": cp.method,
        "images": len(picks),
        "pool_images": n,
        "skipped_images": len(m.skipped),
        "objects_from": m.objects_from,
        "strata_total": reports["selected"]["strata_total"],
        **{f"{side}_{fig}": reports[side][fig] for side in reports for fig in SUMMARY_FIGURES},
        "coverage": reports,
    }
    return CalibrationSet([m.images[i] for i in picked], digest, manifest, plot, report)

"""Measure a calibration pool: statistics and a backbone embedding for every readable image.

Any image folder (or list of images) works: labels are used when the pool has ultralytics-format labels, the model's
own detections otherwise. Unreadable files are skipped and listed (one corrupt upload should not
stop a release); a pool with nothing readable is a DataError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgeslim.calibration.probe import ModelProbe
from edgeslim.calibration.stats import ImageStats, has_labels, image_stats, objects_from_detections, objects_from_labels
from edgeslim.data.images import list_images, preprocess
from edgeslim.data.tasks import Task
from edgeslim.errors import DataError


@dataclass
class PoolMeasure:
    folder: Path
    images: list[Path]  # readable images, sorted
    stats: list[ImageStats]
    embeddings: np.ndarray  # (len(images), C)
    objects_from: str  # "labels" or "predictions"
    skipped: list[str] = field(default_factory=list)  # unreadable files


def measure_pool(pool: Path | list[Path], probe: ModelProbe, imgsz: int, nc: int, task: Task) -> PoolMeasure:
    """Measure an image folder, or the images a data.yaml split lists (``folder`` is then their common one)."""
    candidates = list_images(pool) if isinstance(pool, Path) else pool  # DataError when the folder is missing or holds no images
    if not candidates:
        raise DataError("calibration pool holds no images")
    folder = Path(pool) if isinstance(pool, Path) else Path(os.path.commonpath(candidates))
    labelled = has_labels(candidates)
    images, stats, embeddings, skipped = [], [], [], []
    for path in tqdm(candidates, desc="calibration pool", unit="img"):
        image = cv2.imread(str(path))
        if image is None:
            skipped.append(str(path))
            continue
        seen = probe(preprocess(path, imgsz))
        objects = objects_from_labels(path, task) if labelled else objects_from_detections(seen.classes, seen.boxes_xywh, imgsz)
        images.append(path)
        stats.append(image_stats(image, objects, imgsz, nc))
        embeddings.append(seen.embedding)
    if not images:
        raise DataError(f"calibration pool {folder}: none of its {len(candidates)} image files can be read")
    return PoolMeasure(folder, images, stats, np.stack(embeddings), "labels" if labelled else "predictions", skipped)

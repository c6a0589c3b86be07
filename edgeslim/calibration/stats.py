"""Per-image statistics the curation stratifies on: the conditions that break INT8 calibration.

Why these: a calibration set that never sees a very dark, overexposed, blurred or crowded board
sets activation ranges that clip or waste resolution on exactly those boards. Photometric figures
are measured on the image as the model sees it (longer side scaled to ``imgsz``), so Laplacian
sharpness means the same thing whatever the camera resolution. Objects come from ultralytics-format
labels when the pool has them, else from the model's own detections (``objects_from_detections``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

import edgeslim.ultra  # noqa: F401  (offline ultralytics settings before its import)
from edgeslim.data.images import label_file
from edgeslim.data.tasks import Task, label_size

# Statistics that get strata, in report order; ``classes`` is stratified per class instead.
STAT_NAMES = ("brightness", "contrast", "sharpness", "objects", "object_size")


@dataclass(frozen=True)
class Objects:
    """Objects of one image: class ids and sizes (sqrt of the object's area as a fraction of the image)."""

    classes: tuple[int, ...]
    sizes: tuple[float, ...]


@dataclass(frozen=True)
class ImageStats:
    brightness: float  # mean luma, 0-255
    contrast: float  # RMS contrast: standard deviation of luma
    sharpness: float  # variance of the Laplacian of luma (blur lowers it)
    objects: int
    object_size: float  # median object size, fraction of the image side (0 without objects)
    class_counts: tuple[int, ...]  # objects per class id

    def value(self, name: str) -> float:
        return float(getattr(self, name))

    def as_dict(self) -> dict:
        return {**{k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}, "class_counts": list(self.class_counts)}


def photometric(image_bgr: np.ndarray, imgsz: int) -> tuple[float, float, float]:
    """Brightness, contrast and Laplacian sharpness of an image scaled to the model's input size."""
    scale = imgsz / max(image_bgr.shape[:2])
    size = (max(1, round(image_bgr.shape[1] * scale)), max(1, round(image_bgr.shape[0] * scale)))
    gray = cv2.cvtColor(cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY).astype(np.float64)
    return float(gray.mean()), float(gray.std()), float(cv2.Laplacian(gray, cv2.CV_64F).var())


def has_labels(images: list[Path]) -> bool:
    """A pool is labelled when its label folder exists (an image without a label file is then empty)."""
    folder = label_file(images[0]).parent
    return folder != images[0].parent and folder.is_dir() and any(folder.glob("*.txt"))


def objects_from_labels(image: Path, task: Task) -> Objects:
    """Objects of an ultralytics label file in ``task``'s format (normalized); no file = no objects."""
    path = label_file(image)
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return Objects(tuple(int(float(r[0])) for r in rows), tuple(label_size(r, task) for r in rows))


def objects_from_detections(classes: np.ndarray, boxes_xywh: np.ndarray, imgsz: int) -> Objects:
    """Objects of the model's own detections on the ``imgsz`` letterboxed input."""
    sizes = np.sqrt(np.clip(boxes_xywh[:, 2] * boxes_xywh[:, 3], 0, None)) / imgsz
    return Objects(tuple(int(c) for c in classes), tuple(float(s) for s in sizes))


def image_stats(image_bgr: np.ndarray, objects: Objects, imgsz: int, nc: int) -> ImageStats:
    brightness, contrast, sharpness = photometric(image_bgr, imgsz)
    counts = np.bincount(np.asarray(objects.classes, dtype=np.int64), minlength=nc)[:nc]
    return ImageStats(
        brightness=brightness,
        contrast=contrast,
        sharpness=sharpness,
        objects=len(objects.classes),
        object_size=float(np.median(objects.sizes)) if objects.sizes else 0.0,
        class_counts=tuple(int(c) for c in counts),
    )

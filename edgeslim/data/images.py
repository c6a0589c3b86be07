"""Image loading shared by every stage that feeds a model outside ultralytics' validator.

One preprocessing for all (equivalence check, calibration, latency): ultralytics' own LetterBox,
BGR→RGB, /255, NCHW float32 — so calibration statistics and equivalence inputs match what the
validator and the edge runtime see.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import img2label_paths

from edgeslim.errors import DataError
from edgeslim.ultra import IMG_FORMATS  # the image suffixes ultralytics reads (also its offline settings)


def list_images(folder: Path) -> list[Path]:
    """Sorted image files of a folder; a missing or empty folder is a DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower().lstrip(".") in IMG_FORMATS)
    if not images:
        raise DataError(f"image folder {folder} holds no images ({', '.join(sorted(IMG_FORMATS))})")
    return images


def label_file(image: Path) -> Path:
    """ultralytics' convention: ``.../images/<split>/x.jpg`` → ``.../labels/<split>/x.txt``."""
    return Path(img2label_paths([image])[0])


def preprocess(path: Path, imgsz: int) -> np.ndarray:
    """One image as a 1x3xHxW float32 RGB array in [0, 1], letterboxed to imgsz."""
    img = cv2.imread(str(path))
    if img is None:
        raise DataError(f"image {path} cannot be read")
    boxed = cast(np.ndarray, LetterBox((imgsz, imgsz), auto=False, stride=32)(image=img))  # an image when called with image=
    return np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def preprocess_batch(paths: list[Path], imgsz: int) -> np.ndarray:
    return np.concatenate([preprocess(p, imgsz) for p in paths], axis=0)

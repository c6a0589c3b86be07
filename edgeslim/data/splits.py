"""A data.yaml's splits as ultralytics reads them: the images (and, beside them, the labels) each
split names, and the content version of a user's dataset.

A user's data.yaml is not always one folder per split: ultralytics accepts folders, ``.txt`` image
lists and lists of either, under a ``path:`` root. Every step that feeds images outside
ultralytics' own validator (equivalence, calibration, the latency sample) reads them through here,
so it sees the images the validator scores.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

from edgeslim.data.images import label_file
from edgeslim.data.synthetic import SPLITS
from edgeslim.errors import DataError
from edgeslim.ultra import DATASETS_DIR, IMG_FORMATS

CALIB_FALLBACK_SPLIT = "train"


def split_images(data_yaml: Path, split: str) -> list[Path]:
    """The images of ``split`` as ultralytics reads a data.yaml, sorted (``calib_pool`` falls back to ``train``).

    A split is a folder (searched recursively, hidden folders skipped), a ``.txt`` list of image
    paths (``./`` lines are relative to the list, others as written), or a list of those, each
    relative to ``path``: the dataset root, relative to the working directory when it exists there,
    else to ultralytics' ``datasets_dir`` (its rule); no ``path`` means the data.yaml's folder.
    Paths are kept as listed (not resolved through links), so labels sit where ultralytics looks for
    them (``images`` → ``labels``).
    """
    cfg = yaml.safe_load(data_yaml.read_text()) or {}
    entries = cfg.get(split) or (cfg.get(CALIB_FALLBACK_SPLIT) if split == "calib_pool" else None)
    if not entries:
        raise DataError(f"{data_yaml} names no '{split}' split")
    base = _dataset_root(data_yaml, cfg.get("path"))
    images: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        where = Path(os.path.abspath(base / str(entry)))
        if where.is_dir():
            images += [q for q in where.rglob("*") if not any(part.startswith(".") for part in q.relative_to(where).parts)]
        elif where.is_file():
            images += _listed(where, data_yaml, split)
        else:
            raise DataError(f"{data_yaml}: {split} entry {entry!r} ({where}) does not exist")
    images = sorted({Path(os.path.abspath(q)) for q in images if q.suffix.lower().lstrip(".") in IMG_FORMATS})
    if not images:
        raise DataError(f"{data_yaml}: the {split} split holds no images ({', '.join(sorted(IMG_FORMATS))})")
    missing = [q for q in images if not q.is_file()]
    if missing:
        raise DataError(f"{data_yaml}: {len(missing)} image(s) of the {split} split do not exist, e.g. {missing[0]}")
    return images


def _listed(listing: Path, data_yaml: Path, split: str) -> list[Path]:
    """The images a ``.txt`` split lists, one per line (ultralytics: ``./`` relative to the list)."""
    try:
        lines = [line.strip() for line in listing.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{data_yaml}: {split} entry {listing} is neither a folder nor a .txt list of images") from None
    return [listing.parent / line[2:] if line.startswith("./") else Path(line) for line in lines]


def _dataset_root(data_yaml: Path, path: str | None) -> Path:
    if not path:
        return data_yaml.parent
    root = Path(path).expanduser()
    return root if root.is_absolute() or root.exists() else Path(DATASETS_DIR) / root


def user_dataset_sha256(data_yaml: Path) -> str:
    """Content hash of a user's data.yaml and of every image and label file its splits name, wherever they
    live (a ``.txt`` split may list images outside the yaml's folder), independent of their paths."""
    digest = hashlib.sha256(data_yaml.read_bytes())
    for split in SPLITS:
        for image in split_images(data_yaml, split):
            label = label_file(image)
            digest.update(hashlib.sha256(image.read_bytes()).digest())
            digest.update(hashlib.sha256(label.read_bytes()).digest() if label.is_file() else b"no label")
    return digest.hexdigest()

"""The two models a benchmark compares: a registered baseline, and a stock ultralytics-sized reference.

The reference answers "what would a user who picked yolov8n ship": it is built from ultralytics'
own yaml (nothing can be downloaded here, so it is untrained and has no mAP, only speed and size)
with the dataset's classes, and saved the way ultralytics' trainer saves checkpoints (model in
FP16), so its .pt size compares with a real one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import ultralytics
from ultralytics.nn.tasks import DetectionModel

import edgeslim.ultra  # noqa: F401  (offline settings before ultralytics)
from edgeslim.config import Params
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.sources import pull


@dataclass(frozen=True)
class Subject:
    """One model to benchmark: its source checkpoint and the image size it runs at."""

    key: str  # short id used in folder names and the JSON
    label: str  # what the tables call it
    weights: Path
    imgsz: int
    trained: bool
    origin: dict  # where it came from (registry name/version/run, or the ultralytics yaml)


def pull_registered(tracking_uri: str, model: str, p: Params, dest: Path) -> Subject:
    """Download ``model`` (NAME, NAME@ALIAS or NAME:VERSION) from the registry into ``dest``."""
    client = reg.connect(tracking_uri)
    pulled = pull(client, reg.ModelRef.parse(model, p.mlflow.source_alias), dest)
    return Subject(
        key="registered",
        label=f"{pulled.name} v{pulled.version} @ {p.baseline.imgsz} px",
        weights=pulled.weights,
        imgsz=p.baseline.imgsz,
        trained=True,
        origin={"registry": tracking_uri, "reference": model, "name": pulled.name, "version": pulled.version, "run_id": pulled.run_id},
    )


def build_reference(cfg: str, names: tuple[str, ...], imgsz: int, seed: int, dest: Path) -> Subject:
    """An untrained ``cfg`` detector (e.g. yolov8n.yaml) with ``names`` as classes, saved as a checkpoint."""
    torch.manual_seed(seed)
    model = DetectionModel(cfg, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / f"{Path(cfg).stem}.pt"
    torch.save(
        {
            "model": copy.deepcopy(model).eval().half(),
            "train_args": {"model": cfg, "task": "detect", "imgsz": imgsz},
            "version": ultralytics.__version__,
            "date": datetime.now(UTC).isoformat(),
        },
        weights,
    )
    return Subject(
        key=Path(cfg).stem,
        label=f"{Path(cfg).stem} (untrained, {len(names)} classes) @ {imgsz} px",
        weights=weights,
        imgsz=imgsz,
        trained=False,
        origin={"ultralytics_yaml": cfg, "seed": seed, "nc": len(names)},
    )
